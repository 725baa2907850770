import { parentPort } from 'worker_threads';
import { measureFormats } from '../engine/quant/run';

/** A quantization worker: measures every format on the tensors the main thread sends. */
parentPort?.on(
  'message',
  (m: { id: number; values: Float32Array; rows: number; cols: number; formats: string[]; clip: boolean }) => {
    try {
      parentPort!.postMessage({ id: m.id, results: measureFormats(m.values, m.rows, m.cols, m.formats, m.clip) });
    } catch (e) {
      parentPort!.postMessage({ id: m.id, error: (e as Error).message });
    }
  },
);
