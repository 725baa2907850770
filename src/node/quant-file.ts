import { openModel } from '../engine/formats/registry';
import { quantModel, type QuantOptions, type QuantReport } from '../engine/quant/run';
import { FileByteSource, FolderResolver } from './file-source';

/** `layerplan quant`: opens a model from disk and measures every format on its real weights. */
export async function quantFile(file: string, options: QuantOptions): Promise<QuantReport> {
  const source = await FileByteSource.open(file);
  const siblings = new FolderResolver(file);
  try {
    const graph = await openModel(source, { siblings });
    return await quantModel(graph, source, siblings, options);
  } finally {
    await source.close();
    await siblings.close();
  }
}
