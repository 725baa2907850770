import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Worker } from 'worker_threads';
import { openModel } from '../engine/formats/registry';
import {
  quantModel,
  type FormatResult,
  type MeasureFn,
  type QuantOptions,
  type QuantReport,
} from '../engine/quant/run';
import { FileByteSource, FolderResolver } from './file-source';

/** A pool of worker threads running measureFormats; tensors are transferred, not copied. */
function workerPool(size: number): { measure: MeasureFn; close: () => Promise<void> } | undefined {
  const script = path.join(__dirname, 'quant-worker.js');
  if (size < 2 || !fs.existsSync(script)) return undefined;
  // Loaded here, not at the top: worker_threads costs every CLI start ~2 ms, and only quantizing uses it.
  const { Worker } = require('worker_threads') as typeof import('worker_threads');
  const workers = Array.from({ length: size }, () => new Worker(script));
  const idle = [...workers];
  const waiting: ((w: Worker) => void)[] = [];
  let nextId = 0;
  const acquire = () => new Promise<Worker>((resolve) => (idle.length ? resolve(idle.pop()!) : waiting.push(resolve)));
  const release = (w: Worker) => (waiting.length ? waiting.shift()!(w) : idle.push(w));
  const measure: MeasureFn = async (values, rows, cols, formats, clip) => {
    const w = await acquire();
    try {
      const id = nextId++;
      return await new Promise<FormatResult[]>((resolve, reject) => {
        const onMessage = (m: { id: number; results?: FormatResult[]; error?: string }) => {
          if (m.id !== id) return;
          w.off('message', onMessage);
          w.off('error', reject);
          if (m.error) reject(new Error(m.error));
          else resolve(m.results!);
        };
        w.on('message', onMessage);
        w.once('error', reject);
        w.postMessage({ id, values, rows, cols, formats, clip }, [values.buffer as ArrayBuffer]);
      });
    } finally {
      release(w);
    }
  };
  return { measure, close: async () => void (await Promise.all(workers.map((w) => w.terminate()))) };
}

/** `layerplan quant`: opens a model from disk and measures every format on its real weights, on all cores. */
export async function quantFile(file: string, options: QuantOptions): Promise<QuantReport> {
  const source = await FileByteSource.open(file);
  const siblings = new FolderResolver(file);
  const pool = workerPool(Math.min(os.cpus().length, 8));
  try {
    const graph = await openModel(source, { siblings });
    return await quantModel(graph, source, siblings, {
      ...options,
      measure: pool?.measure,
      concurrency: pool ? Math.min(os.cpus().length, 8) + 1 : 1,
    });
  } finally {
    await pool?.close();
    await source.close();
    await siblings.close();
  }
}
