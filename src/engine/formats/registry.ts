import type { ByteSource, SiblingResolver } from '../bytes';
import { InputError } from '../errors';
import type { ModelGraph } from '../graph/model-graph';
import { looksLikeOnnx, readOnnxModel } from './onnx';
import { checkExternalData } from './onnx-data';
import { onnxToGraph } from './onnx-graph';
import { openGguf, openHfConfig, openSafetensors, openSafetensorsIndex } from './checkpoint';

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

const lower = (name: string) => name.toLowerCase();

export const safetensorsIndexFormat: ModelFormat = {
  id: 'safetensors-index',
  extensions: ['.safetensors.index.json'],
  match: (name) => lower(name).endsWith('.safetensors.index.json'),
  open: (source, o) => openSafetensorsIndex(source, o.siblings, o.bindings ?? {}),
};

export const safetensorsFormat: ModelFormat = {
  id: 'safetensors',
  extensions: ['.safetensors'],
  // 8-byte little-endian header length, then '{'.
  match: (name, head) =>
    lower(name).endsWith('.safetensors') || (head.length > 9 && head[8] === 0x7b && head[6] === 0 && head[7] === 0),
  open: (source, o) => openSafetensors(source, o.siblings, o.bindings ?? {}),
};

export const ggufFormat: ModelFormat = {
  id: 'gguf',
  extensions: ['.gguf'],
  match: (name, head) =>
    lower(name).endsWith('.gguf') || (head[0] === 0x47 && head[1] === 0x47 && head[2] === 0x55 && head[3] === 0x46),
  open: (source, o) => openGguf(source, o.bindings ?? {}),
};

export const hfConfigFormat: ModelFormat = {
  id: 'hf-config',
  extensions: ['config.json'],
  match: (name, head) => lower(name).endsWith('.json') && head[0] === 0x7b,
  open: (source, o) => openHfConfig(source, o.siblings, o.bindings ?? {}),
};

/** Order matters: the index before generic JSON, extensions before magic bytes. */
export const formats: ModelFormat[] = [
  safetensorsIndexFormat,
  onnxFormat,
  safetensorsFormat,
  ggufFormat,
  hfConfigFormat,
];

/** Opens any supported model file as a ModelGraph. */
export async function openModel(source: ByteSource, options: OpenOptions = {}): Promise<ModelGraph> {
  if (source.size === 0) throw new InputError(source.name, 'empty file, not a model');
  const head = await source.read(0, Math.min(64, source.size));
  const byName = formats.find((f) => f.extensions.some((e) => source.name.toLowerCase().endsWith(e)));
  const format = byName ?? formats.find((f) => f.match(source.name, head));
  if (!format) {
    throw new InputError(
      source.name,
      'not a model file Layerplan can read (expected .onnx, .safetensors, a safetensors index, .gguf or a Hugging Face config.json)',
    );
  }
  const foreign =
    byName && byName.id !== 'gguf' ? FOREIGN.find(([, magic]) => magic.every((b, i) => head[i] === b)) : undefined;
  if (foreign) throw new InputError(source.name, `is ${foreign[0]}, not ${LABEL[byName!.id] ?? byName!.id}`);
  return format.open(source, options);
}

const LABEL: Record<string, string> = {
  onnx: 'an ONNX model',
  safetensors: 'a safetensors file',
  'safetensors-index': 'a safetensors index',
  'hf-config': 'a Hugging Face config',
};

/** Files that are often misnamed as models, by their first bytes: said as what they are, not as a parse error at some offset. */
const FOREIGN: [string, number[]][] = [
  ['a PNG image', [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]],
  ['a JPEG image', [0xff, 0xd8, 0xff]],
  ['a ZIP archive (PyTorch .pt / .pth checkpoints are ZIP archives)', [0x50, 0x4b, 0x03, 0x04]],
  ['gzip-compressed data', [0x1f, 0x8b]],
  ['a GGUF file (name it .gguf)', [0x47, 0x47, 0x55, 0x46]],
  [
    'a Git LFS pointer (git lfs pull fetches the file itself)',
    [...'version https://git-lfs'].map((c) => c.charCodeAt(0)),
  ],
];
