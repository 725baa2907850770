import { AttributeType, DataType } from './onnx-schema.generated';
import { subgraphsOf, type OnnxAttribute, type OnnxGraph, type OnnxModel, type OnnxNode } from './onnx';

/**
 * Raises a model's default-domain opset (ai.onnx) to `target`, rewriting the nodes whose signature
 * changed on the way, so that operators only newer opsets have (DequantizeLinear with block_size and
 * 4-bit types at 21, float8 at 19) can be added to an older model. The changes handled are those of
 * the ONNX operator changelog (docs/Changelog.md) between opset 11 and 25 that are not compatible:
 *   12  Dropout: ratio attribute → input
 *   13  Squeeze, Unsqueeze, ReduceSum: axes attribute → input; Split: split attribute → input
 *   18  ReduceMean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare: axes attribute → input;
 *       Split without a split input names num_outputs
 *   21  GroupNormalization changed its scale and bias to one per channel: refused
 * Every other operator in these opsets only gained types or optional attributes. Models below
 * opset 11 are refused (their upgrade crosses many more changes). Subgraphs are converted too.
 */
export interface OpsetUpgrade {
  from: number;
  to: number;
  /** What was rewritten: `op (count)`. */
  rewritten: string[];
}

/** The IR version each opset came with (ONNX's docs/Versioning.md table), for the upgraded model's ir_version. */
const IR_FOR_OPSET: [number, number][] = [
  [19, 9],
  [21, 10],
  [23, 11],
];

export function defaultOpset(model: OnnxModel): number {
  return model.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 0;
}

/** Why the model cannot be raised to `target`, or undefined when it can. */
export function opsetUpgradeProblem(model: OnnxModel, target: number): string | undefined {
  const from = defaultOpset(model);
  if (from >= target) return undefined;
  if (from < 11) return `the model is at opset ${from}; raising it to ${target} is only done from opset 11`;
  const bad = new Set<string>();
  const visit = (g: OnnxGraph) => {
    for (const n of g.nodes) {
      if (isDefault(n) && n.opType === 'GroupNormalization' && target >= 21) bad.add(n.opType);
      if (isDefault(n) && (n.opType === 'Upsample' || n.opType === 'Scatter')) bad.add(n.opType);
      subgraphsOf(n).forEach(visit);
    }
  };
  visit(model.graph);
  if (bad.size) return `its ${[...bad].join(', ')} changed meaning before opset ${target}`;
  return undefined;
}

const isDefault = (n: OnnxNode) => n.domain === '' || n.domain === 'ai.onnx';

const AXES_TO_INPUT_18 = new Set([
  'ReduceMean',
  'ReduceMax',
  'ReduceMin',
  'ReduceProd',
  'ReduceL1',
  'ReduceL2',
  'ReduceLogSum',
  'ReduceLogSumExp',
  'ReduceSumSquare',
]);

/** Upgrades in place; throws when opsetUpgradeProblem says it cannot. */
export function upgradeOpset(model: OnnxModel, target: number): OpsetUpgrade {
  const from = defaultOpset(model);
  const done: OpsetUpgrade = { from, to: Math.max(from, target), rewritten: [] };
  if (from >= target) return done;
  const problem = opsetUpgradeProblem(model, target);
  if (problem) throw new Error(problem);
  const counts = new Map<string, number>();
  const names = new Set<string>();
  const collect = (g: OnnxGraph) => {
    for (const t of g.initializers) names.add(t.name);
    for (const n of g.nodes) {
      n.outputs.forEach((o) => names.add(o));
      subgraphsOf(n).forEach(collect);
    }
  };
  collect(model.graph);
  const fresh = (base: string) => {
    let name = base;
    for (let i = 1; names.has(name); i++) name = `${base}_${i}`;
    names.add(name);
    return name;
  };
  const crosses = (v: number) => from < v && target >= v;

  const convert = (g: OnnxGraph) => {
    for (const n of g.nodes) {
      subgraphsOf(n).forEach(convert);
      if (!isDefault(n)) continue;
      const took = (): void => void counts.set(n.opType, (counts.get(n.opType) ?? 0) + 1);
      /** Moves an attribute to input `index` as a constant (int64 list, or float scalar). */
      const toInput = (attr: string, index: number, kind: 'ints' | 'float') => {
        const a = n.attributes.find((x) => x.name === attr);
        if (!a) return false;
        n.attributes = n.attributes.filter((x) => x !== a);
        const name = fresh(`${n.name || n.opType}_${attr}`);
        const bytes =
          kind === 'ints'
            ? new Uint8Array(BigInt64Array.from(a.ints.map(BigInt)).buffer)
            : new Uint8Array(Float32Array.of(a.f ?? 0).buffer);
        g.initializers.push({
          name,
          dataType: kind === 'ints' ? DataType.INT64 : DataType.FLOAT,
          dims: kind === 'ints' ? [a.ints.length] : [],
          data: { kind: 'inline', bytes },
          docString: '',
          elements: kind === 'ints' ? a.ints.length : 1,
        });
        while (n.inputs.length < index) n.inputs.push('');
        n.inputs[index] = name;
        took();
        return true;
      };
      if (crosses(12) && n.opType === 'Dropout') toInput('ratio', 1, 'float');
      if (crosses(13) && (n.opType === 'Squeeze' || n.opType === 'Unsqueeze' || n.opType === 'ReduceSum')) {
        toInput('axes', 1, 'ints');
      }
      if (crosses(13) && n.opType === 'Split') toInput('split', 1, 'ints');
      if (crosses(18) && AXES_TO_INPUT_18.has(n.opType)) toInput('axes', 1, 'ints');
      if (crosses(18) && n.opType === 'Split' && !n.inputs[1] && !n.attributes.some((a) => a.name === 'num_outputs')) {
        n.attributes.push(intAttribute('num_outputs', n.outputs.length));
        took();
      }
    }
  };
  convert(model.graph);
  for (const o of model.opsetImport) if (o.domain === '' || o.domain === 'ai.onnx') o.version = target;
  const ir = IR_FOR_OPSET.filter(([op]) => target >= op).pop()?.[1] ?? 0;
  model.irVersion = Math.max(model.irVersion, ir);
  done.rewritten = [...counts].map(([op, c]) => `${op} (${c})`);
  return done;
}

export function intAttribute(name: string, i: number): OnnxAttribute {
  return attribute(name, AttributeType.INT, { i });
}

export function intsAttribute(name: string, ints: number[]): OnnxAttribute {
  return attribute(name, AttributeType.INTS, { ints });
}

export function stringAttribute(name: string, s: string): OnnxAttribute {
  return attribute(name, AttributeType.STRING, { s: new TextEncoder().encode(s) });
}

function attribute(name: string, type: number, value: Partial<OnnxAttribute>): OnnxAttribute {
  return {
    name,
    type,
    floats: [],
    ints: [],
    strings: [],
    tensors: [],
    graphs: [],
    sparseTensors: [],
    typeProtos: [],
    ...value,
  };
}
