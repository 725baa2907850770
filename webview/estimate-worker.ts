import { estimate, modelChecks } from '../src/engine/cost/estimate';
import { workloadFrom, type Workload } from '../src/engine/cost/workload';

import type { EstimateAnswer, EstimateRequest } from '../src/protocol';

/**
 * The planner's cost engine in a web worker: every edit re-estimates here, off the UI thread.
 * The workload is rebuilt only when the host sends a new source (a model or its bindings changed).
 * Messages are typed in src/protocol.ts.
 */
let workload: Workload | undefined;

self.onmessage = (e: MessageEvent<EstimateRequest>) => {
  const t0 = performance.now();
  const { id, plan, source } = e.data;
  if (source) workload = workloadFrom(source);
  const answer: EstimateAnswer = {
    id,
    problems: [],
    ms: 0,
    blockParameters: [],
    layerNames: [],
    layerParameters: [],
  };
  try {
    if (!workload) throw new Error('no model yet');
    answer.blockParameters = workload.blockIndices.map((i) => workload!.layers[i].parameters);
    answer.layerNames = workload.layers.map((l) => l.name);
    answer.blockIndices = workload.blockIndices;
    answer.layerParameters = workload.layers.map((l) => l.parameters);
    answer.problems = modelChecks(plan, workload).map(([, m]) => m);
    if (!answer.problems.length) answer.report = estimate(plan, workload, 'plan');
  } catch (err) {
    answer.engineError = (err as Error).message;
  }
  answer.ms = performance.now() - t0;
  (self as unknown as Worker).postMessage(answer);
};
