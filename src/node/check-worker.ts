import { parentPort } from 'worker_threads';
import { InputError } from '../engine/errors';
import type { CheckAnswer, CheckRequest } from './checker';
import { NotCheckedError, tryEstimatePlan } from './plan-file';
import { checkAnyFile } from './launch-file';

/**
 * Checks and estimates plan files off the extension host's main thread (src/node/checker.ts starts
 * it; the host terminates it when the user types again or it runs past its time budget).
 */
parentPort?.on('message', (m: CheckRequest) => {
  void (async (): Promise<CheckAnswer> => {
    try {
      if (m.kind === 'check') {
        // Plans, configs and launch configurations (Megatron-LM scripts, DeepSpeed configs, torchtitan TOMLs).
        const r = await checkAnyFile(m.file, { text: m.text });
        return { id: m.id, diagnostics: r.diagnostics };
      }
      const r = await tryEstimatePlan(m.file, m.text);
      return { id: m.id, plan: r.plan, report: r.report, estimateError: r.error?.problem };
    } catch (e) {
      if (e instanceof NotCheckedError) return { id: m.id, inputError: e.message, notChecked: true };
      if (e instanceof InputError) return { id: m.id, inputError: e.message };
      return { id: m.id, error: (e as Error).message ?? String(e) };
    }
  })().then((answer) => parentPort!.postMessage(answer));
});
