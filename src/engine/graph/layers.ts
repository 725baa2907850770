import type { GraphNode, GraphTensor, Layer, ModelGraph } from './model-graph';

/**
 * Layer grouping by name scope. A name is split on '/' and '.' into segments; the layer is the
 * prefix through the first numbered block segment (`layers.3`, `h.3`, `blk.3`, `layer.3`,
 * `block_3`), so `/model/layers.3/mlp/MatMul` and `model.layers.3.mlp.up_proj.weight` both land in
 * `model.layers.3`. Names without a block keep their scope minus the last segment (`lm_head`,
 * `transformer.ln_f`). Weights whose names say nothing (`onnx::MatMul_462`) join the layer of the
 * node that consumes them; unscoped nodes (CNN exports) start a new layer at each node that owns
 * weights, and the parameter-free nodes after it join that layer.
 */
export function scopeOf(name: string, isTensor: boolean, strip?: string): string | undefined {
  if (!name || /^onnx::/.test(name) || /^(val|_v|tmp|Constant)_?\d+$/.test(name)) return undefined;
  let segs = name
    .replace(/^[/.]+/, '')
    .split(/[/.]+/)
    .filter(Boolean);
  if (strip !== undefined && segs[0] === strip) segs = segs.slice(1);
  if (segs.length < 2) return undefined;
  for (let i = 0; i < segs.length - 1; i++) {
    if (/^\d+$/.test(segs[i + 1]) && i + 1 < segs.length - 1) return segs.slice(0, i + 2).join('.');
    if (
      /^[A-Za-z_]+[_-]?\d+$/.test(segs[i]) &&
      /^(block|blk|layer|h|layers)[_-]?\d+$/i.test(segs[i]) &&
      i < segs.length - 1
    ) {
      return segs.slice(0, i + 1).join('.');
    }
  }
  // No numbered block: the scope without its last segment (the op or the parameter name).
  void isTensor;
  const scope = segs.slice(0, segs.length - 1);
  return scope.length ? scope.join('.') : undefined;
}

export function groupLayers(graph: ModelGraph): void {
  // A prefix that every name shares (caffe2's 'gpu_0/…') says nothing about layers: strip it.
  const scopes = new Set<string | undefined>();
  for (const n of graph.nodes) if (n.parent < 0 && n.name) scopes.add(scopeOf(n.name, false));
  for (const t of graph.tensors.values()) if (t.isWeight) scopes.add(scopeOf(t.name, true));
  scopes.delete(undefined);
  const only = scopes.size === 1 ? [...scopes][0] : undefined;
  const strip = only && !only.includes('.') && graph.nodes.length > 20 ? only : undefined;
  const scope = (name: string, isTensor: boolean) => scopeOf(name, isTensor, strip);
  const layers: Layer[] = [];
  const byName = new Map<string, Layer>();
  const get = (name: string): Layer => {
    let l = byName.get(name);
    if (!l) {
      l = { index: layers.length, name, nodes: [], weights: [], parameters: 0, flops: 0 };
      layers.push(l);
      byName.set(name, l);
    }
    return l;
  };
  const weightsOf = (n: GraphNode): GraphTensor[] =>
    n.inputs.map((i) => graph.tensors.get(i)).filter((t): t is GraphTensor => !!t && t.isWeight);
  /** Weights that make a node a layer of its own: real parameters, not shape or index constants. */
  const ownsParameters = (n: GraphNode) =>
    n.opType !== 'Constant' && weightsOf(n).some((w) => w.elements > 1 && !/^u?int(64|32)$|^bool$/.test(w.dtype));

  let current: Layer | undefined;
  for (const node of graph.nodes) {
    if (node.parent >= 0) {
      node.layer = graph.nodes[node.parent].layer;
      layers[node.layer].nodes.push(node.index);
      continue;
    }
    let nodeScope = scope(node.name, false);
    if (!nodeScope) {
      for (const w of weightsOf(node)) {
        nodeScope = scope(w.name, true);
        if (nodeScope) break;
      }
    }
    let layer: Layer;
    if (nodeScope) layer = get(nodeScope);
    else if (ownsParameters(node)) layer = get(node.name || weightsOf(node)[0].name || `${node.opType}_${node.index}`);
    else layer = current ?? get('(input)');
    node.layer = layer.index;
    layer.nodes.push(node.index);
    current = layer;
  }
  for (const t of graph.tensors.values()) {
    if (!t.isWeight) continue;
    const weightScope = scope(t.name, true);
    let layer: Layer | undefined;
    if (weightScope && byName.has(weightScope)) layer = byName.get(weightScope);
    else if (t.consumers.length) layer = layers[graph.nodes[t.consumers[0]].layer];
    else if (t.producer !== undefined) layer = layers[graph.nodes[t.producer].layer];
    else layer = get(weightScope ?? (graph.nodes.length ? '(unused weights)' : t.name.replace(/\.(weight|bias)$/, '')));
    t.layer = layer!.index;
    layer!.weights.push(t.name);
    layer!.parameters += t.elements;
  }
  for (const node of graph.nodes) layers[node.layer].flops += node.flops;
  graph.layers = layers;
}
