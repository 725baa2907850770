import { openModel } from '../engine/formats/registry';
import { inspectGraph, type InspectReport } from '../engine/report/inspect';
import { FileByteSource, FolderResolver } from './file-source';

/** Opens a model file from disk (external data resolved beside it) and summarizes it. */
export async function inspectFile(file: string, bindings: Record<string, number> = {}): Promise<InspectReport> {
  const source = await FileByteSource.open(file);
  const siblings = new FolderResolver(file);
  try {
    const graph = await openModel(source, { bindings, siblings });
    return inspectGraph(graph);
  } finally {
    await source.close();
    await siblings.close();
  }
}
