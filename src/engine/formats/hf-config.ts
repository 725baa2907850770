import type { ByteSource } from '../bytes';
import { InputError } from '../errors';
import type { TransformerSpec } from '../graph/transformer-spec';

/** config.json files are small; a bigger one is not a config. */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

export const SUPPORTED_MODEL_TYPES = [
  'llama',
  'mistral',
  'qwen2',
  'gemma',
  'gemma2',
  'phi3',
  'gpt2',
  'gpt_neox',
  'bert',
  'mixtral',
  'qwen3',
];

export async function readJsonSource(source: ByteSource, what: string): Promise<Record<string, unknown>> {
  if (source.size > MAX_CONFIG_BYTES) {
    throw new InputError(source.name, `${source.size} bytes is too large for a ${what}`);
  }
  const text = new TextDecoder('utf-8', { fatal: false }).decode(await source.read(0, source.size));
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new InputError(source.name, `not valid JSON (${(e as Error).message})`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new InputError(source.name, `a ${what} is a JSON object`);
  }
  return value as Record<string, unknown>;
}

export function isHfConfig(json: Record<string, unknown>): boolean {
  return typeof json.model_type === 'string' || Array.isArray(json.architectures);
}

/** Maps a Hugging Face config.json to the transformer it describes. */
export function hfConfigToSpec(json: Record<string, unknown>, file: string): TransformerSpec {
  const type = String(json.model_type ?? '').toLowerCase();
  // Sizes past these describe no real model (the largest use ~2^15 hidden, ~2^18 vocabulary, ~2^10
  // layers): refused at the field, so a mistyped extra zero costs a message, not minutes of work.
  const limit = (what: string) => (/layer/.test(what) ? 100_000 : /hidden/.test(what) ? 1 << 20 : 1 << 24);
  const num = (keys: string[], what: string, fallback?: number): number => {
    for (const k of keys) {
      const v = json[k];
      if (typeof v === 'number' && Number.isInteger(v) && v > limit(what)) {
        throw new InputError(
          file,
          `${k}: ${v} is past the limit of ${limit(what).toLocaleString('en-US')} (no real model has ${what} that large)`,
        );
      }
      if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
      if (v !== undefined && v !== null) {
        throw new InputError(file, `${k}: ${JSON.stringify(v)} is not a positive integer`);
      }
    }
    if (fallback !== undefined) return fallback;
    throw new InputError(file, `${keys[0]} is missing (needed for ${what})`);
  };
  const bool = (k: string, fallback: boolean) => (typeof json[k] === 'boolean' ? (json[k] as boolean) : fallback);
  if (type === 'gpt2') {
    const h = num(['n_embd', 'hidden_size'], 'the hidden size');
    const heads = num(['n_head', 'num_attention_heads'], 'attention heads');
    return {
      family: 'gpt2',
      layers: num(['n_layer', 'num_hidden_layers'], 'the layer count'),
      hidden: h,
      heads,
      kvHeads: heads,
      headDim: h / heads,
      ffn: num(['n_inner'], 'the MLP width', 4 * h),
      vocab: num(['vocab_size'], 'the vocabulary'),
      positions: num(['n_positions', 'max_position_embeddings'], 'positions', 1024),
      gated: false,
      tied: bool('tie_word_embeddings', true),
      norm: 'layernorm',
      qkvBias: true,
      denseBias: true,
      experts: 1,
      topK: 1,
      dropout: true,
      encoder: false,
      tokenTypes: 0,
      maxSeqLen: num(['n_positions'], 'positions', 1024),
    };
  }
  const h = num(['hidden_size', 'd_model', 'n_embd'], 'the hidden size');
  const heads = num(['num_attention_heads', 'n_head'], 'attention heads');
  const layers = num(['num_hidden_layers', 'n_layer', 'num_layers'], 'the layer count');
  const vocab = num(['vocab_size'], 'the vocabulary');
  if (type === 'bert' || type === 'roberta') {
    return {
      family: 'bert',
      layers,
      hidden: h,
      heads,
      kvHeads: heads,
      headDim: h / heads,
      ffn: num(['intermediate_size'], 'the MLP width', 4 * h),
      vocab,
      positions: num(['max_position_embeddings'], 'positions', 512),
      gated: false,
      tied: true,
      norm: 'layernorm',
      qkvBias: true,
      denseBias: true,
      experts: 1,
      topK: 1,
      dropout: true,
      encoder: true,
      tokenTypes: num(['type_vocab_size'], 'token types', 2),
    };
  }
  if (type === 'gpt_neox') {
    return {
      family: 'gpt_neox',
      layers,
      hidden: h,
      heads,
      kvHeads: heads,
      headDim: h / heads,
      ffn: num(['intermediate_size'], 'the MLP width', 4 * h),
      vocab,
      positions: 0,
      gated: false,
      tied: bool('tie_word_embeddings', false),
      norm: 'layernorm',
      qkvBias: bool('attention_bias', true),
      denseBias: true,
      experts: 1,
      topK: 1,
      dropout: false,
      encoder: false,
      tokenTypes: 0,
      maxSeqLen: num(['max_position_embeddings'], 'positions', 2048),
    };
  }
  const kvHeads = num(['num_key_value_heads'], 'key/value heads', heads);
  const headDim = num(['head_dim'], 'the head size', Math.floor(h / heads));
  const experts =
    type === 'mixtral'
      ? num(['num_local_experts'], 'experts', 8)
      : num(['num_local_experts', 'num_experts'], 'experts', 1);
  const family = SUPPORTED_MODEL_TYPES.includes(type) ? type : 'llama';
  return {
    family,
    layers,
    hidden: h,
    heads,
    kvHeads,
    headDim,
    ffn: num(['intermediate_size'], 'the MLP width'),
    vocab,
    positions: 0,
    gated: true,
    // Gemma ties its embeddings by default; llama, mistral, qwen2, phi3 and mixtral do not unless the config says so.
    tied: bool('tie_word_embeddings', type.startsWith('gemma')),
    norm: 'rmsnorm',
    qkvBias: bool('attention_bias', type === 'qwen2'),
    denseBias: false,
    experts,
    topK: experts > 1 ? num(['num_experts_per_tok'], 'experts per token', 2) : 1,
    dropout: false,
    encoder: false,
    tokenTypes: 0,
    maxSeqLen: num(['max_position_embeddings'], 'positions', 4096),
  };
}
