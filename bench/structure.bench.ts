/**
 * `npm run bench` (part): grouping an unnamed graph by its structure (graph/structure.ts) as the graph grows.
 * The graph is a multi-scale detector with no name scopes: a backbone of residual units at four resolutions,
 * a feature pyramid over its stage outputs (lateral convolutions, upsampling, merges) and one head branch per
 * level, built in memory at 12.5k, 25k, 50k and 100k nodes. Prints the time per node relative to the smallest
 * graph in the same run: grouping is linear when the ratio stays near 1 (a quadratic step would double it
 * with each doubling).
 */
import { groupLevel } from '../src/engine/graph/layers';
import type { AttrValue, GraphNode, GraphTensor, ModelGraph } from '../src/engine/graph/model-graph';
import { analyzeGraph } from '../src/engine/graph/structure';

function detector(units: number): ModelGraph {
  const nodes: GraphNode[] = [];
  const tensors = new Map<string, GraphTensor>();
  const tensor = (name: string, isWeight = false): GraphTensor => {
    let t = tensors.get(name);
    if (!t) {
      t = { name, dtype: 'float', isWeight, elements: isWeight ? 64 : 0, bytes: isWeight ? 256 : 0, consumers: [] };
      tensors.set(name, t);
    }
    return t;
  };
  const node = (opType: string, inputs: string[], attributes: Record<string, AttrValue> = {}): string => {
    const index = nodes.length;
    const out = `t${index}`;
    nodes.push({
      index,
      name: '',
      opType,
      domain: '',
      inputs,
      outputs: [out],
      attributes,
      parent: -1,
      depth: 0,
      layer: 0,
      known: false,
      flops: 0,
      bytesMoved: 0,
    });
    for (const i of inputs) tensor(i).consumers.push(index);
    tensor(out).producer = index;
    return out;
  };
  const conv = (x: string, stride = 1) => {
    const w = `w${nodes.length}`;
    tensor(w, true);
    return node('Relu', [node('Conv', [x, w], { kernel_shape: [3, 3], strides: [stride, stride], group: 1 })]);
  };
  tensor('x');
  let x = 'x';
  const taps: string[] = [];
  // Four stages of residual units (conv, conv, add: 5 nodes each).
  for (let s = 0; s < 4; s++) {
    x = conv(x, 2);
    for (let u = 0; u < units / 4; u++) x = node('Add', [x, conv(conv(x))]);
    taps.push(x);
  }
  // FPN: lateral convolutions, top-down upsampling and merges, one head branch per level.
  const outputs: string[] = [];
  let top = conv(taps[3]);
  for (let s = 2; s >= 0; s--) {
    top = node('Add', [conv(taps[s]), node('Resize', [top])]);
    outputs.push(conv(conv(top)));
  }
  return {
    format: 'onnx',
    producer: 'bench',
    producerVersion: '',
    opsets: { '': 17 },
    nodes,
    tensors,
    layers: [],
    inputs: ['x'],
    outputs,
    bindings: {},
    metadata: {},
  };
}

function time(units: number): { nodes: number; ms: number; layers: number } {
  const graph = detector(units);
  const t0 = performance.now();
  const groups = groupLevel(
    graph,
    graph.nodes.map((n) => n.index),
    graph.outputs,
    analyzeGraph(graph),
  );
  return { nodes: graph.nodes.length, ms: performance.now() - t0, layers: groups.length };
}

time(500); // warm-up
const runs = [2500, 5000, 10000, 20000].map(time);
const base = runs[0].ms / runs[0].nodes;
console.log('structural grouping (graph/structure.ts) of an unnamed detector: backbone, FPN, heads');
for (const r of runs) {
  const ratio = r.ms / r.nodes / base;
  console.log(
    `  ${String(r.nodes).padStart(7)} nodes  ${r.ms.toFixed(0).padStart(6)} ms  ${String(r.layers).padStart(6)} layers` +
      `  time per node ×${ratio.toFixed(2)} of the smallest`,
  );
}
