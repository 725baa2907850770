import { parentPort } from 'worker_threads';
import { answer, type CheckRequest } from './checker';

/**
 * Checks and estimates plan files off the extension host's main thread (src/node/checker.ts starts
 * it; the host terminates it when the user types again or it runs past its time budget).
 */
parentPort?.on('message', (m: CheckRequest) => {
  void answer(m).then((a) => parentPort!.postMessage(a));
});
