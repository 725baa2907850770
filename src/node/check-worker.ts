import { answer, type CheckRequest } from './checker';

/**
 * Checks and estimates plan files off the extension host (src/node/checker.ts forks this script; the
 * host kills it when the user types again or it runs past its time budget). It ends with its parent.
 */
process.on('message', (m: CheckRequest) => {
  void answer(m).then((a) => process.send?.(a));
});
process.on('disconnect', () => process.exit(0));
