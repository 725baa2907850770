/**
 * Every field of a plan file, declared once: its type, its range and what it means. The JSON Schema
 * VS Code uses for completion and hover (schemas/plan.schema.json) is generated from this table
 * (scripts/gen-plan-schema.cjs; `npm run compile` checks it is current), and validatePlan checks
 * each field against it — so the schema, the editor's diagnostics and `layerplan check` agree.
 *
 * Limits: sizes no real model or cluster reaches are refused at the field with the reason, so that a
 * mistyped extra zero gets a diagnostic instead of minutes of work (docs/ARCHITECTURE.md, "Limits").
 */

export type FieldSpec =
  | { kind: 'int'; min?: number; max?: number; description: string; why?: string }
  | { kind: 'number'; min?: number; positive?: boolean; max?: number; description: string; why?: string }
  | { kind: 'bool'; description: string }
  | { kind: 'enum'; values: readonly (string | number)[]; description: string; message?: string }
  | { kind: 'string'; description: string; examples?: readonly string[]; nonEmpty?: boolean }
  | {
      kind: 'object';
      description: string;
      properties: Record<string, FieldSpec>;
      required?: readonly string[];
      /** Shown when the value is not an object. */
      shape?: string;
    }
  | { kind: 'array'; description: string; items: FieldSpec; maxItems?: number; shape?: string }
  /** A value of one of these kinds; validation picks the alternative by the value's JSON type. */
  | { kind: 'oneOf'; description: string; options: readonly FieldSpec[]; message: string };

/** The largest sizes a plan may name, and why (each is far past any real model or cluster). */
export const LIMITS = {
  layers: { max: 100_000, why: 'no model has that many layers' },
  hidden: { max: 1 << 20, why: 'past any real hidden size (the largest models use about 2^15)' },
  heads: { max: 65_536, why: 'past any real head count' },
  vocab: { max: 1 << 24, why: 'past any real vocabulary' },
  seqLen: { max: 1 << 24, why: 'past any context length trained or served (16M tokens)' },
  batch: { max: 1 << 24, why: 'past any real batch size' },
  gpusPerNode: { max: 1024, why: 'past any NVLink or PCIe domain' },
  nodes: { max: 1 << 17, why: 'past any cluster (131,072 nodes)' },
  degree: { max: 1 << 20, why: 'past the GPUs of any cluster' },
  virtualStages: { max: 1024, why: 'past any interleaved schedule' },
  experts: { max: 65_536, why: 'past any mixture of experts' },
  devices: { max: 64, why: 'more devices than one inference host holds' },
  rules: { max: 10_000, why: 'more precision rules than any model needs' },
} as const;

const posInt = (description: string, limit?: { max: number; why: string }): FieldSpec => ({
  kind: 'int',
  min: 1,
  ...(limit ? { max: limit.max, why: limit.why } : {}),
  description,
});

/** Number formats are open-ended names (int4-g128-asym, q4_k_m, …): a string, checked by the engine. */
export const formatField = (description: string, examples: readonly string[]): FieldSpec => ({
  kind: 'string',
  description,
  examples,
});

const link = (description: string): FieldSpec => ({
  kind: 'object',
  description,
  properties: {
    bandwidthGBps: { kind: 'number', positive: true, description: 'Per GPU, each direction, GB/s.' },
    latencyUs: { kind: 'number', min: 0, description: 'One-way latency, microseconds.' },
  },
});

/** The architecture object: a transformer described by its shape, for models that do not exist yet. */
const archSpec: FieldSpec = {
  kind: 'object',
  description: 'A transformer by its shape: {"arch": "gpt", "layers": 96, "hidden": 12288, …}.',
  required: ['arch', 'layers', 'hidden', 'heads', 'vocab'],
  properties: {
    arch: {
      kind: 'enum',
      values: ['gpt', 'llama'],
      description: 'gpt: LayerNorm, GELU MLP, learned positions; llama: RMSNorm, gated MLP, rotary, GQA.',
      message: 'is not a known architecture (gpt, llama)',
    },
    layers: posInt('Transformer blocks.', LIMITS.layers),
    hidden: posInt('Hidden size.', LIMITS.hidden),
    heads: posInt('Attention heads.', LIMITS.heads),
    kvHeads: posInt('Key/value heads (grouped-query attention); default: heads.', LIMITS.heads),
    headDim: posInt('Attention head size; default hidden ÷ heads.', LIMITS.hidden),
    ffn: posInt('MLP inner size; default 4 × hidden (gpt) or the llama rule.', LIMITS.hidden),
    vocab: posInt('Vocabulary size.', LIMITS.vocab),
    seqLen: posInt('Context length the model is built for.', LIMITS.seqLen),
    tiedEmbeddings: { kind: 'bool', description: 'The output layer shares the token embedding.' },
    experts: posInt('Mixture of experts: experts per MoE layer.', LIMITS.experts),
    expertsPerToken: posInt('Mixture of experts: experts each token is routed to (top-k).', LIMITS.experts),
    expertFfn: posInt('Mixture of experts: each expert’s MLP inner size; default ffn.', LIMITS.hidden),
    capacityFactor: {
      kind: 'number',
      positive: true,
      description: 'Expert capacity factor (tokens per expert ÷ fair share).',
    },
  },
};

export function planFields(catalog: {
  gpus: readonly string[];
  formats: readonly string[];
  /** CPU (DRAM) ids offered for devices[].cpu. */
  devices?: readonly string[];
  /** GPU and Apple chip ids offered for devices[].gpu (default: the cluster's GPU ids). */
  deviceGpus?: readonly string[];
}): FieldSpec {
  return {
    kind: 'object',
    description:
      "How a model's layers map to devices and precisions. Layerplan checks what a schema cannot (GPU counts, heads vs tensor degree, memory) and shows it as diagnostics.",
    shape: 'a plan is a JSON object with "model", "cluster" and "training" or "inference"',
    required: ['model'],
    properties: {
      model: {
        kind: 'oneOf',
        description:
          'A model file relative to the plan (.onnx, .safetensors, index, .gguf, config.json), or an architecture object.',
        options: [{ kind: 'string', nonEmpty: true, description: 'A model file, relative to the plan.' }, archSpec],
        message: 'a path to a model file or an architecture object ({"arch": "gpt", …}) is required',
      },
      cluster: {
        kind: 'object',
        description: 'The GPUs: a catalog id and how many; optional when "devices" is given.',
        shape: 'required ({"gpu": "a100-80gb", "gpusPerNode": 8, "nodes": 1})',
        properties: {
          gpu: {
            kind: 'string',
            description: 'GPU catalog id (aliases such as "h100" are accepted; a check offers the canonical id).',
            examples: catalog.gpus,
          },
          gpusPerNode: posInt('GPUs per node (one NVLink / PCIe domain).', LIMITS.gpusPerNode),
          nodes: posInt('Nodes.', LIMITS.nodes),
          maxGpus: posInt('The optimizer may use up to this many GPUs.', LIMITS.degree),
          pricePerGpuHour: {
            kind: 'number',
            positive: true,
            description: 'Price of one GPU-hour, for the cost objective.',
          },
          memoryGB: { kind: 'number', positive: true, description: 'Override the GPU memory, GB.' },
          intraNode: link('Inside a node (NVLink or PCIe): overrides the catalog.'),
          interNode: link('Between nodes (the NIC of each GPU): overrides the catalog.'),
        },
      },
      training: {
        kind: 'object',
        description: 'A training step.',
        required: ['globalBatch', 'microBatch'],
        properties: {
          globalBatch: posInt('Sequences per optimizer step.', LIMITS.batch),
          microBatch: posInt('Sequences per micro-batch on one GPU.', LIMITS.batch),
          seqLen: posInt('Tokens per sequence.', LIMITS.seqLen),
          dtype: {
            kind: 'enum',
            values: ['fp16', 'bf16', 'fp32', 'fp8'],
            description: 'Compute precision of the GEMMs.',
          },
          fp8Recipe: {
            kind: 'enum',
            values: ['delayed', 'current', 'blockwise'],
            description:
              'fp8 scaling: delayed (amax history), current (per-tensor, this step), blockwise (DeepSeek-V3 style).',
          },
          optimizer: {
            kind: 'enum',
            values: ['adam', 'adamw', 'sgd'],
            description: 'Optimizer (its states per parameter).',
          },
          recompute: {
            kind: 'enum',
            values: ['none', 'selective', 'full'],
            description: 'Activation recomputation (Korthikanti et al. 2022).',
          },
          framework: {
            kind: 'enum',
            values: ['megatron-lm-2021', 'megatron-core', 'nemo', 'deepspeed', 'fsdp', 'torchtitan'],
            description: 'Software profile: its defaults (overlaps, fused kernels) and calibrated efficiencies.',
          },
          overlapGradReduce: {
            kind: 'bool',
            description: 'Overlap the data-parallel gradient reduction with the backward pass.',
          },
          dropout: { kind: 'bool', description: 'Dropout masks are kept for the backward pass (activation memory).' },
        },
      },
      inference: {
        kind: 'object',
        description: 'Serving requests: prefill of the prompt, then decoding token by token.',
        required: ['batch', 'promptLen', 'genLen'],
        properties: {
          batch: posInt('Requests decoded together.', LIMITS.batch),
          promptLen: posInt('Prompt tokens per request.', LIMITS.seqLen),
          genLen: posInt('Generated tokens per request.', LIMITS.seqLen),
          contextLen: posInt('Context the runtime allocates (llama.cpp -c, vLLM --max-model-len).', LIMITS.seqLen),
          kvCache: {
            kind: 'enum',
            values: [
              'f32',
              'f16',
              'bf16',
              'q8_0',
              'q4_0',
              'q4_1',
              'q5_0',
              'q5_1',
              'iq4_nl',
              'fp8',
              'fp8_e4m3',
              'fp8_e5m2',
            ],
            description: 'KV cache type (llama.cpp -ctk/-ctv; vLLM --kv-cache-dtype).',
          },
          runtime: {
            kind: 'enum',
            values: ['llama.cpp', 'vllm', 'accelerate'],
            description: 'Whose memory rules apply.',
          },
          runtimeVersion: {
            kind: 'string',
            description: 'Runtime version whose rules apply (llama.cpp build, e.g. "b7400").',
          },
          flashAttention: { kind: 'bool', description: 'Flash attention (llama.cpp -fa).' },
          gpuLayers: {
            kind: 'int',
            min: 0,
            max: LIMITS.layers.max,
            why: LIMITS.layers.why,
            description: 'llama.cpp -ngl: layers offloaded to GPUs.',
          },
          tensorSplit: {
            kind: 'array',
            description: 'llama.cpp -ts: proportions of the offloaded layers per GPU.',
            items: { kind: 'number', min: 0, description: 'A proportion.' },
            maxItems: LIMITS.devices.max,
          },
          gpuMemoryUtilization: {
            kind: 'number',
            positive: true,
            max: 1,
            description: 'vLLM --gpu-memory-utilization.',
          },
          dtype: { kind: 'string', description: 'Weights and activations dtype where no precision is given.' },
        },
      },
      parallel: {
        kind: 'object',
        description: 'How the GPUs share the work.',
        properties: {
          data: posInt('Data-parallel degree.', LIMITS.degree),
          tensor: posInt('Tensor-parallel degree (Megatron).', LIMITS.degree),
          pipeline: posInt('Pipeline stages.', LIMITS.degree),
          context: posInt('Context parallel: the sequence split across GPUs (K/V exchanged).', LIMITS.degree),
          expert: posInt('Expert parallel for MoE layers (all-to-all dispatch / combine).', LIMITS.degree),
          expertTensor: posInt(
            'Tensor parallelism inside each expert (expert-tensor-parallel size); default: tensor. Experts fold expert × expertTensor over the tensor × context × data ranks.',
            LIMITS.degree,
          ),
          schedule: { kind: 'enum', values: ['gpipe', '1f1b', 'interleaved'], description: 'Pipeline schedule.' },
          virtualStages: posInt('Interleaved schedule: model chunks per device.', LIMITS.virtualStages),
          sequenceParallel: { kind: 'bool', description: 'Megatron sequence parallelism (with tensor parallelism).' },
          zero: {
            kind: 'enum',
            values: [0, 1, 2, 3],
            description: 'ZeRO stage (3 = FSDP full sharding).',
            message: 'must be 0, 1, 2 or 3',
          },
          distributedOptimizer: {
            kind: 'bool',
            description: "Megatron's distributed optimizer: optimizer states sharded over data-parallel ranks.",
          },
          overlapParamGather: {
            kind: 'bool',
            description:
              'All-gather the updated parameters during the next forward (distributed optimizer, FSDP prefetch); default: the framework’s (Megatron: only with training.overlapGradReduce).',
          },
          tpCommOverlap: {
            kind: 'bool',
            description:
              'Overlap tensor-parallel communication with the GEMMs (Transformer Engine userbuffers, async TP); default: the framework’s (Megatron: only with sequenceParallel).',
          },
        },
      },
      stages: {
        kind: 'array',
        description: 'Explicit pipeline stages (inter-op split); a stage may name its device.',
        shape: 'a list of {"layers": "0-11"}',
        maxItems: LIMITS.degree.max,
        items: {
          kind: 'object',
          description: 'One stage.',
          required: ['layers'],
          properties: {
            layers: { kind: 'string', description: 'Layer indices: "0-11", "3", "0-3,8-11".' },
            device: {
              kind: 'int',
              min: 0,
              max: LIMITS.devices.max - 1,
              why: LIMITS.devices.why,
              description: 'An index into "devices".',
            },
          },
        },
      },
      devices: {
        kind: 'array',
        description: 'Heterogeneous devices (inference): GPUs of different kinds, the CPU, Apple silicon.',
        maxItems: LIMITS.devices.max,
        items: {
          kind: 'object',
          description: 'A GPU ({"gpu": "rtx-4090"}) or a CPU with its RAM ({"cpu": "ddr5-6000-2ch", "memoryGB": 64}).',
          properties: {
            gpu: {
              kind: 'string',
              description: 'GPU or Apple chip catalog id (rtx-4090, rtx-3090, a6000, l40s, apple-m2-max, …).',
              examples: catalog.deviceGpus ?? catalog.gpus,
            },
            cpu: {
              kind: 'string',
              description: 'DRAM kind-speed-channels, e.g. ddr5-6000-2ch.',
              examples: catalog.devices ?? [],
            },
            memoryGB: {
              kind: 'number',
              positive: true,
              description:
                'Memory of this device as sold, GB (binary: a 24 GB card holds 24 GiB): VRAM, unified memory, RAM (default 32 for a CPU).',
            },
            bandwidthGBps: {
              kind: 'number',
              positive: true,
              description: 'Override the memory bandwidth, GB/s (measured, or a part the catalog lacks).',
            },
            tflops: {
              kind: 'number',
              positive: true,
              description: 'Override the compute rate prefill uses, TFLOP/s (a CPU: its cores; a GPU: dense FP16).',
            },
          },
        },
      },
      precision: {
        kind: 'object',
        description: 'Number formats per layer or tensor.',
        properties: {
          default: formatField('Format for everything no rule matches.', catalog.formats),
          rules: {
            kind: 'array',
            description: 'The last matching rule wins.',
            shape: 'a list of {"match": "*.mlp.*", "format": "int4-g128"}',
            maxItems: LIMITS.rules.max,
            items: {
              kind: 'object',
              description: 'A rule.',
              required: ['match', 'format'],
              properties: {
                match: {
                  kind: 'string',
                  description:
                    'Glob on layer or tensor names: * any run, ? one character, {a,b} either; e.g. *.mlp.*, layers.{3,4,5}',
                },
                format: formatField('A number format.', catalog.formats),
              },
            },
          },
          activations: {
            kind: 'object',
            description: 'Activation quantization (W8A8 and the like).',
            properties: {
              format: formatField('Activation format, e.g. int8-tensor.', []),
              observer: {
                kind: 'enum',
                values: ['minmax', 'moving-average', 'percentile', 'mse', 'entropy'],
                description: 'How the activation range is calibrated.',
              },
            },
          },
          errorBudgetDb: {
            kind: 'number',
            description: "The lowest acceptable SQNR of the model's output, dB (whole model, predicted).",
          },
        },
      },
    },
  };
}

export type JsonPath = (string | number)[];

/** What a field check reports: the path and the message (the collector adds ranges). */
export interface FieldProblem {
  path: JsonPath;
  message: string;
  severity: 'error' | 'warning';
}

const kindOf = (v: unknown) => (Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v);

/**
 * Checks `value` against `spec` at `path`; appends problems. Iterative over arrays and objects by
 * the table's own depth (which is fixed), never by the input's nesting.
 */
export function checkField(value: unknown, spec: FieldSpec, path: JsonPath, out: FieldProblem[]): void {
  const name = path.join('.');
  const err = (message: string): void => {
    out.push({ path, message: `${name}: ${message}`, severity: 'error' });
  };
  switch (spec.kind) {
    case 'int':
    case 'number': {
      const isInt = spec.kind === 'int';
      const low = spec.kind === 'int' ? spec.min : spec.positive ? undefined : spec.min;
      const positive = spec.kind === 'number' && spec.positive;
      if (typeof value !== 'number' || !Number.isFinite(value) || (isInt && !Number.isInteger(value))) {
        return err(
          isInt
            ? low === 1
              ? 'must be a positive integer'
              : `must be an integer`
            : positive
              ? 'must be a positive number'
              : 'must be a number',
        );
      }
      if (positive && !(value > 0)) return err('must be a positive number');
      if (low !== undefined && value < low) {
        return err(isInt && low === 1 ? 'must be a positive integer' : `must be at least ${low}`);
      }
      if (spec.max !== undefined && value > spec.max) {
        return err(
          `${value} is past the limit of ${spec.max.toLocaleString('en-US')}${spec.why ? ` (${spec.why})` : ''}`,
        );
      }
      return;
    }
    case 'bool':
      if (typeof value !== 'boolean') err('must be true or false');
      return;
    case 'enum':
      if (!spec.values.includes(value as string | number)) {
        err(
          spec.message
            ? spec.message.startsWith('must')
              ? spec.message
              : `'${String(value)}' ${spec.message}`
            : `'${String(value)}' is not one of ${spec.values.join(', ')}`,
        );
      }
      return;
    case 'string':
      if (typeof value !== 'string') err('must be a string');
      else if (spec.nonEmpty && !value.trim()) err('an empty path');
      return;
    case 'array': {
      if (!Array.isArray(value)) return err(spec.shape ?? 'must be a list');
      if (spec.maxItems !== undefined && value.length > spec.maxItems) {
        return err(`${value.length} entries are past the limit of ${spec.maxItems.toLocaleString('en-US')}`);
      }
      value.forEach((item, i) => checkField(item, spec.items, [...path, i], out));
      return;
    }
    case 'object': {
      if (!value || typeof value !== 'object' || Array.isArray(value)) return err(spec.shape ?? 'must be an object');
      const obj = value as Record<string, unknown>;
      for (const key of spec.required ?? []) {
        if (obj[key] === undefined) {
          const sub = spec.properties[key];
          const why =
            sub.kind === 'oneOf'
              ? sub.message
              : sub.kind === 'int' && sub.min === 1
                ? 'must be a positive integer'
                : 'is required';
          out.push({
            path: [...path, key],
            message: `${[...path, key].join('.')}: ${why}`,
            severity: 'error',
          });
        }
      }
      for (const [key, v] of Object.entries(obj)) {
        const sub = spec.properties[key];
        if (!sub) {
          const hint = nearestKey(key, Object.keys(spec.properties));
          out.push({
            path: [...path, key],
            message: `${[...path, key].join('.')}: unknown field${hint ? ` (did you mean '${hint}'?)` : ''}; known: ${Object.keys(spec.properties).join(', ')}`,
            severity: 'warning',
          });
        } else if (v !== undefined) checkField(v, sub, [...path, key], out);
      }
      return;
    }
    case 'oneOf': {
      const want = kindOf(value);
      const option = spec.options.find((o) =>
        o.kind === 'object'
          ? want === 'object'
          : o.kind === 'array'
            ? want === 'array'
            : o.kind === 'string'
              ? want === 'string'
              : want === 'number',
      );
      if (!option) return err(spec.message);
      checkField(value, option, path, out);
      return;
    }
  }
}

function nearestKey(key: string, keys: string[]): string | undefined {
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of keys) {
    const d = levenshtein(lower, k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}

/** The JSON Schema (draft-07) of a field table, for VS Code's completion and hover. */
export function toJsonSchema(spec: FieldSpec): Record<string, unknown> {
  const d = { description: spec.description };
  switch (spec.kind) {
    case 'int':
      return {
        type: 'integer',
        ...(spec.min !== undefined ? { minimum: spec.min } : {}),
        ...(spec.max !== undefined ? { maximum: spec.max } : {}),
        ...d,
      };
    case 'number':
      return {
        type: 'number',
        ...(spec.positive ? { exclusiveMinimum: 0 } : spec.min !== undefined ? { minimum: spec.min } : {}),
        ...(spec.max !== undefined ? { maximum: spec.max } : {}),
        ...d,
      };
    case 'bool':
      return { type: 'boolean', ...d };
    case 'enum':
      return { enum: [...spec.values], ...d };
    case 'string':
      return { type: 'string', ...d, ...(spec.examples?.length ? { examples: [...spec.examples] } : {}) };
    case 'array':
      return {
        type: 'array',
        ...d,
        items: toJsonSchema(spec.items),
        ...(spec.maxItems !== undefined ? { maxItems: spec.maxItems } : {}),
      };
    case 'object':
      return {
        type: 'object',
        ...d,
        ...(spec.required?.length ? { required: [...spec.required] } : {}),
        properties: Object.fromEntries(Object.entries(spec.properties).map(([k, v]) => [k, toJsonSchema(v)])),
      };
    case 'oneOf':
      return { ...d, oneOf: spec.options.map(toJsonSchema) };
  }
}
