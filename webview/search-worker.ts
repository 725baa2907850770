import { workloadFrom } from '../src/engine/cost/workload';
import { optimize } from '../src/engine/search/optimize';
import type { SearchAnswer, SearchRequest } from '../src/protocol';

/**
 * The planner's Find best plans in a web worker: the whole search runs here, off the view's thread, and
 * reports its progress as it goes. Cancelling terminates the worker (the planner starts a fresh one).
 */
self.onmessage = (e: MessageEvent<SearchRequest>) => {
  const { id, plan, source, objective, top, layerSqnr } = e.data;
  const post = (a: SearchAnswer) => (self as unknown as Worker).postMessage(a);
  try {
    const result = optimize(plan, workloadFrom(source), {
      objective,
      top,
      layerSqnr,
      onProgress: (progress) => post({ id, progress }),
    });
    post({ id, result });
  } catch (err) {
    post({ id, error: (err as Error).message });
  }
};
