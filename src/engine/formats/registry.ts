import type { ByteSource, SiblingResolver } from '../bytes';
import { InputError } from '../errors';
import type { ModelGraph } from '../graph/model-graph';
import { looksLikeOnnx, readOnnxModel } from './onnx';
import { checkExternalData } from './onnx-data';
import { onnxToGraph } from './onnx-graph';

export interface OpenOptions {
  /** Values for symbolic dims (batch, sequence) when counting FLOPs. */
  bindings?: Record<string, number>;
  siblings?: SiblingResolver;
  ignoreValueInfo?: boolean;
}

/** One entry per model format: a cheap match on name and first bytes, then a full open. */
export interface ModelFormat {
  id: string;
  extensions: string[];
  match(name: string, head: Uint8Array): boolean;
  open(source: ByteSource, options: OpenOptions): Promise<ModelGraph>;
}

export const onnxFormat: ModelFormat = {
  id: 'onnx',
  extensions: ['.onnx', '.onnx.data', '.ort'],
  match: (name, head) => name.toLowerCase().endsWith('.onnx') || looksLikeOnnx(head),
  open: async (source, options) => {
    const model = await readOnnxModel(source);
    await checkExternalData(model, source, options.siblings);
    return onnxToGraph(model, source, options);
  },
};

export const formats: ModelFormat[] = [onnxFormat];

/** Opens any supported model file as a ModelGraph. */
export async function openModel(source: ByteSource, options: OpenOptions = {}): Promise<ModelGraph> {
  const head = await source.read(0, Math.min(64, source.size));
  const byName = formats.find((f) => f.extensions.some((e) => source.name.toLowerCase().endsWith(e)));
  const format = byName ?? formats.find((f) => f.match(source.name, head));
  if (!format) throw new InputError(source.name, 'not a model file Layerplan can read (expected .onnx)');
  return format.open(source, options);
}
