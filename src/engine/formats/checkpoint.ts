import type { ByteSource, SiblingResolver } from '../bytes';
import { InputError, MissingFileError } from '../errors';
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

/**
 * The config.json beside a checkpoint, which gives it its structure (and so its FLOPs). A missing
 * or foreign config is not an error, but it is said: the graph carries a warning, which inspect,
 * estimate and the plan's diagnostics show. A config that is there and cannot be read (refused,
 * unreadable, broken JSON) is an error naming it.
 */
async function siblingConfig(
  checkpoint: string,
  siblings: SiblingResolver | undefined,
  warnings: string[],
): Promise<{ json: Record<string, unknown>; name: string } | undefined> {
  const noFlops = 'its layers have no structure, so no FLOPs are counted and estimates have no compute time';
  if (!siblings) {
    warnings.push(`${checkpoint}: opened without its folder, so no config.json was read: ${noFlops}`);
    return undefined;
  }
  let src: ByteSource;
  try {
    src = await siblings.open('config.json', 'checkpoint');
  } catch (e) {
    if (!(e instanceof MissingFileError)) throw e;
    warnings.push(`${checkpoint}: no config.json beside it: ${noFlops}; put the model's config.json in its folder`);
    return undefined;
  }
  const json = await readJsonSource(src, 'config');
  if (!isHfConfig(json)) {
    warnings.push(`${src.name}: not a Hugging Face config (no model_type or architectures): ${noFlops}`);
    return undefined;
  }
  return { json, name: src.name };
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
  const warnings: string[] = [];
  const cfg = await siblingConfig(source.name, siblings, warnings);
  const g = joinGraph('safetensors', st.tensors.map(safetensorsStored), cfg?.json, cfg?.name ?? '', bindings);
  g.metadata = st.metadata;
  if (warnings.length) g.warnings = [...(g.warnings ?? []), ...warnings];
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
    const src = await siblings.open(shard, 'checkpoint');
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
  const warnings: string[] = [];
  const cfg = await siblingConfig(source.name, siblings, warnings);
  const g = joinGraph('safetensors', stored, cfg?.json, cfg?.name ?? '', bindings);
  if (warnings.length) g.warnings = [...(g.warnings ?? []), ...warnings];
  return g;
}

/** GGUF architectures whose metadata becomes a synthesized transformer (with tensor names mapped to Hugging Face's). */
const GGUF_TRANSFORMERS = ['llama', 'mistral', 'qwen2', 'gemma', 'mixtral'];

export async function openGguf(source: ByteSource, bindings: Record<string, number>): Promise<ModelGraph> {
  const g = await readGguf(source);
  const config = ggufConfig(g);
  const family = String(config?.model_type ?? '');
  const llamaLike = GGUF_TRANSFORMERS.includes(family);
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
  const structured = llamaLike && !!config?.intermediate_size;
  const graph = joinGraph('gguf', stored, structured ? config : undefined, source.name, bindings);
  if (!structured) {
    const arch = g.metadata.get('general.architecture');
    const name = typeof arch === 'string' ? arch : '';
    const why = !GGUF_TRANSFORMERS.includes(name)
      ? `GGUF architecture '${name || '(none)'}' is not one Layerplan builds a transformer for (${GGUF_TRANSFORMERS.join(', ')})`
      : !config
        ? `its metadata lacks ${name}.block_count, ${name}.embedding_length or ${name}.attention.head_count`
        : `its metadata lacks ${name}.feed_forward_length`;
    graph.warnings = [
      `${source.name}: ${why}: its layers have no structure, so no FLOPs are counted and estimates have no compute time`,
    ];
  }
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
