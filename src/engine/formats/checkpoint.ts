import type { ByteSource, SiblingResolver } from '../bytes';
import { InputError } from '../errors';
import { groupLayers } from '../graph/layers';
import type { GraphTensor, ModelGraph } from '../graph/model-graph';
import { synthesizeTransformer } from '../graph/transformer';
import { ggufConfig, ggufToHfName, readGguf } from './gguf';
import { hfConfigToSpec, isHfConfig, readJsonSource } from './hf-config';
import { parseSafetensorsIndex, readSafetensors, SAFETENSORS_DTYPES } from './safetensors';

/** Where a checkpoint tensor's bytes live; GraphTensor.ref for safetensors and GGUF weights. */
export interface CheckpointTensorRef {
  format: 'safetensors' | 'gguf';
  file: string;
  offset: number;
  length: number;
  /** safetensors dtype code or ggml type name. */
  storage: string;
  shape: number[];
  /** For shards of an index: the shard's name relative to the model folder. */
  shard?: string;
}

interface StoredTensor {
  name: string;
  dtype: string;
  shape: number[];
  elements: number;
  bytes: number;
  ref: CheckpointTensorRef;
}

async function tryOpen(siblings: SiblingResolver | undefined, name: string): Promise<ByteSource | undefined> {
  if (!siblings) return undefined;
  try {
    return await siblings.open(name);
  } catch {
    return undefined;
  }
}

/** The config.json beside a checkpoint, if there is one and it is a Hugging Face config. */
async function siblingConfig(
  siblings?: SiblingResolver,
): Promise<{ json: Record<string, unknown>; name: string } | undefined> {
  const src = await tryOpen(siblings, 'config.json');
  if (!src) return undefined;
  const json = await readJsonSource(src, 'config');
  return isHfConfig(json) ? { json, name: src.name } : undefined;
}

/**
 * Builds one graph from stored tensors and (optionally) a config: the synthesized transformer's
 * weights take the real tensors' dtypes and locations; tensors the config does not name join
 * their layer by name; without a config the graph is the tensors grouped by name scope.
 */
function joinGraph(
  format: string,
  tensors: StoredTensor[],
  config: Record<string, unknown> | undefined,
  configName: string,
  bindings: Record<string, number>,
): ModelGraph {
  let graph: ModelGraph;
  if (config) {
    graph = synthesizeTransformer(hfConfigToSpec(config, configName), format, bindings);
  } else {
    graph = {
      format,
      producer: '',
      producerVersion: '',
      opsets: {},
      nodes: [],
      tensors: new Map(),
      layers: [],
      inputs: [],
      outputs: [],
      bindings: { ...bindings },
      metadata: {},
    };
  }
  graph.format = format;
  for (const t of tensors) {
    const existing = graph.tensors.get(t.name);
    if (existing?.isWeight) {
      Object.assign(existing, { dtype: t.dtype, elements: t.elements, bytes: t.bytes, ref: t.ref });
    } else if (!existing) {
      const g: GraphTensor = {
        name: t.name,
        dtype: t.dtype,
        shape: t.shape,
        isWeight: true,
        elements: t.elements,
        bytes: t.bytes,
        consumers: [],
        ref: t.ref,
      };
      graph.tensors.set(t.name, g);
    }
  }
  groupLayers(graph);
  return graph;
}

function safetensorsStored(t: {
  name: string;
  dtype: string;
  shape: number[];
  elements: number;
  offset: number;
  length: number;
  file: string;
}): StoredTensor {
  return {
    name: t.name,
    dtype: SAFETENSORS_DTYPES[t.dtype][0],
    shape: t.shape,
    elements: t.elements,
    bytes: t.length,
    ref: { format: 'safetensors', file: t.file, offset: t.offset, length: t.length, storage: t.dtype, shape: t.shape },
  };
}

export async function openSafetensors(
  source: ByteSource,
  siblings: SiblingResolver | undefined,
  bindings: Record<string, number>,
): Promise<ModelGraph> {
  const st = await readSafetensors(source);
  const cfg = await siblingConfig(siblings);
  const g = joinGraph('safetensors', st.tensors.map(safetensorsStored), cfg?.json, cfg?.name ?? '', bindings);
  g.metadata = st.metadata;
  return g;
}

export async function openSafetensorsIndex(
  source: ByteSource,
  siblings: SiblingResolver | undefined,
  bindings: Record<string, number>,
): Promise<ModelGraph> {
  const shards = parseSafetensorsIndex(await readJsonSource(source, 'safetensors index'), source.name);
  if (!siblings) throw new InputError(source.name, 'a sharded checkpoint needs its folder to read the shards');
  const stored: StoredTensor[] = [];
  for (const [shard, names] of shards) {
    const src = await siblings.open(shard);
    const st = await readSafetensors(src);
    const byName = new Map(st.tensors.map((t) => [t.name, t]));
    for (const n of names) {
      const t = byName.get(n);
      if (!t) throw new InputError(source.name, `weight_map says '${n}' is in '${shard}', which does not hold it`);
      const st2 = safetensorsStored(t);
      (st2.ref as CheckpointTensorRef).shard = shard;
      stored.push(st2);
    }
  }
  const cfg = await siblingConfig(siblings);
  return joinGraph('safetensors', stored, cfg?.json, cfg?.name ?? '', bindings);
}

export async function openGguf(source: ByteSource, bindings: Record<string, number>): Promise<ModelGraph> {
  const g = await readGguf(source);
  const config = ggufConfig(g);
  const family = String(config?.model_type ?? '');
  const llamaLike = ['llama', 'mistral', 'qwen2', 'gemma', 'mixtral'].includes(family);
  const stored: StoredTensor[] = g.tensors.map((t) => {
    // GGUF lists dims innermost first; report them outermost first, as the other formats do.
    const shape = [...t.dims].reverse();
    const name = llamaLike ? ggufToHfName(t.name) : t.name;
    const dtype =
      t.typeName === 'F32'
        ? 'float'
        : t.typeName === 'F16'
          ? 'float16'
          : t.typeName === 'BF16'
            ? 'bfloat16'
            : t.typeName.toLowerCase();
    return {
      name,
      dtype,
      shape,
      elements: t.elements,
      bytes: t.length,
      ref: { format: 'gguf', file: source.name, offset: t.offset, length: t.length, storage: t.typeName, shape },
    };
  });
  const graph = joinGraph(
    'gguf',
    stored,
    llamaLike && config?.intermediate_size ? config : undefined,
    source.name,
    bindings,
  );
  graph.producer = typeof g.metadata.get('general.name') === 'string' ? (g.metadata.get('general.name') as string) : '';
  graph.metadata = Object.fromEntries(
    [...g.metadata].filter(([, v]) => typeof v !== 'object').map(([k, v]) => [k, String(v)]),
  );
  graph.metadata['gguf.version'] = String(g.version);
  return graph;
}

export async function openHfConfig(
  source: ByteSource,
  siblings: SiblingResolver | undefined,
  bindings: Record<string, number>,
): Promise<ModelGraph> {
  const json = await readJsonSource(source, 'config');
  if (!isHfConfig(json)) {
    throw new InputError(source.name, 'not a Hugging Face config (no model_type or architectures)');
  }
  const graph = synthesizeTransformer(hfConfigToSpec(json, source.name), 'hf-config', bindings);
  graph.metadata = { model_type: String(json.model_type ?? '') };
  void siblings;
  return graph;
}
