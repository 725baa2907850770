import { IssueCollector, parseJsonWithTree, type Issue } from '../plan/plan';
import { deepSpeedIssues } from './launch/deepspeed';

/** What a JSON file is, for `layerplan check` and the editor's diagnostics. */
export type CheckedKind = 'plan' | 'hf-config' | 'deepspeed' | 'unknown';

export function detectKind(fileName: string, value: unknown): CheckedKind {
  const v = (value && typeof value === 'object' && !Array.isArray(value) ? value : {}) as Record<string, unknown>;
  if (/\.plan\.json$/i.test(fileName) || ('model' in v && ('cluster' in v || 'training' in v || 'parallel' in v))) {
    return 'plan';
  }
  if ('model_type' in v || 'architectures' in v) return 'hf-config';
  if (
    ['train_batch_size', 'train_micro_batch_size_per_gpu', 'gradient_accumulation_steps', 'zero_optimization'].some(
      (k) => k in v,
    ) ||
    /deepspeed|ds_config/i.test(fileName)
  ) {
    return 'deepspeed';
  }
  return 'unknown';
}

const posInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;

/** Hugging Face config.json: shapes that cannot work. */
export function checkHfConfig(text: string): Issue[] {
  const { value, root, syntax } = parseJsonWithTree(text);
  if (syntax.length) return syntax;
  const c = new IssueCollector(text, root);
  const j = (value ?? {}) as Record<string, unknown>;
  const key = (...names: string[]) => names.find((n) => j[n] !== undefined);
  const hiddenKey = key('hidden_size', 'n_embd', 'd_model');
  const headsKey = key('num_attention_heads', 'n_head');
  for (const k of [
    'hidden_size',
    'n_embd',
    'num_attention_heads',
    'n_head',
    'num_hidden_layers',
    'n_layer',
    'num_key_value_heads',
    'intermediate_size',
    'vocab_size',
    'head_dim',
    'max_position_embeddings',
  ]) {
    if (j[k] !== undefined && j[k] !== null && !posInt(j[k])) {
      c.error([k], `${k}: ${JSON.stringify(j[k])} is not a positive integer`);
    }
  }
  const hidden = hiddenKey ? j[hiddenKey] : undefined;
  const heads = headsKey ? j[headsKey] : undefined;
  if (posInt(hidden) && posInt(heads) && j.head_dim === undefined && hidden % heads !== 0) {
    c.error(
      [headsKey!],
      `${headsKey}: ${heads} heads do not divide ${hiddenKey} ${hidden} (head size ${(hidden / heads).toFixed(2)}); set head_dim or change one of them`,
    );
  }
  if (posInt(heads) && posInt(j.num_key_value_heads)) {
    if (j.num_key_value_heads > heads) {
      c.error(
        ['num_key_value_heads'],
        `num_key_value_heads: ${j.num_key_value_heads} is more than the ${heads} attention heads`,
      );
    } else if (heads % j.num_key_value_heads !== 0) {
      c.error(
        ['num_key_value_heads'],
        `num_key_value_heads: ${heads} attention heads are not divisible by ${j.num_key_value_heads} key/value heads (grouped-query attention needs equal groups)`,
      );
    }
  }
  if (posInt(j.num_local_experts) && posInt(j.num_experts_per_tok) && j.num_experts_per_tok > j.num_local_experts) {
    c.error(
      ['num_experts_per_tok'],
      `num_experts_per_tok: ${j.num_experts_per_tok} is more than the ${j.num_local_experts} experts`,
    );
  }
  if (
    posInt(j.head_dim) &&
    posInt(j.rope_dim ?? j.rotary_dim) &&
    ((j.rope_dim ?? j.rotary_dim) as number) > j.head_dim
  ) {
    c.warn([j.rope_dim !== undefined ? 'rope_dim' : 'rotary_dim'], 'the rotary dimension is larger than head_dim');
  }
  if (
    j.torch_dtype !== undefined &&
    !['float32', 'float16', 'bfloat16', 'float8_e4m3fn', 'auto'].includes(String(j.torch_dtype))
  ) {
    c.warn(['torch_dtype'], `torch_dtype: '${String(j.torch_dtype)}' is not a dtype torch knows`);
  }
  return c.issues;
}

/**
 * DeepSpeed config: its keys against DeepSpeed's own config classes, the batch-size identity (over
 * `worldSize` GPUs when given), precision switches, ZeRO and offload (check/launch/deepspeed.ts).
 */
export function checkDeepSpeed(text: string, worldSize?: number): Issue[] {
  return deepSpeedIssues(text, worldSize);
}
