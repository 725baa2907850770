/// <reference lib="webworker" />
import dagre from '@dagrejs/dagre';

import type { LayoutAnswer, LayoutRequest } from '../src/protocol';

/**
 * Lays out a graph off the UI thread: boxes in (each perhaps inside a cluster: an expanded layer, a
 * group of layers sharing a name prefix), positions and cluster frames out, or the error, by id.
 * dagre lays out compound graphs up to DAGRE_LIMIT boxes; past it, a layered layout of our own.
 */

const CLUSTER_PAD = 10;
/** Room above a cluster's first row for its name. */
const CLUSTER_LABEL = 16;

/** Frames around each cluster's members (nested clusters included), for layouts that do not make them. */
function frames(req: LayoutRequest, at: Map<string, { x: number; y: number }>): LayoutAnswer['clusters'] {
  const clusters = req.clusters ?? [];
  const parentOf = new Map<string, string | undefined>(clusters.map((c) => [c.id, c.parent]));
  const bounds = new Map<string, { x0: number; y0: number; x1: number; y1: number }>();
  const grow = (id: string, x0: number, y0: number, x1: number, y1: number) => {
    const b = bounds.get(id) ?? { x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity };
    bounds.set(id, { x0: Math.min(b.x0, x0), y0: Math.min(b.y0, y0), x1: Math.max(b.x1, x1), y1: Math.max(b.y1, y1) });
  };
  for (const b of req.boxes) {
    const p = at.get(b.id);
    if (!p) continue;
    let x0 = p.x - b.width / 2;
    let y0 = p.y - b.height / 2;
    let x1 = p.x + b.width / 2;
    let y1 = p.y + b.height / 2;
    for (let c = b.parent, guard = 0; c && guard < 64; c = parentOf.get(c), guard++) {
      x0 -= CLUSTER_PAD;
      x1 += CLUSTER_PAD;
      y0 -= CLUSTER_PAD + CLUSTER_LABEL;
      y1 += CLUSTER_PAD;
      grow(c, x0, y0, x1, y1);
    }
  }
  return [...bounds].map(([id, b]) => ({ id, x: b.x0, y: b.y0, width: b.x1 - b.x0, height: b.y1 - b.y0 }));
}

/**
 * Big graphs (dagre recurses and overflows the stack past a few thousand boxes): a layered layout
 * of our own — ranks by longest path from the sources (Kahn's order, no recursion), boxes of a rank
 * side by side, wrapped into rows of at most ROW_WIDTH, straight edges.
 */
const ROW_WIDTH = 2400;
function layered(req: LayoutRequest): LayoutAnswer {
  const { id, boxes, edges } = req;
  const index = new Map(boxes.map((b, i) => [b.id, i]));
  const out: number[][] = boxes.map(() => []);
  const indeg = new Array(boxes.length).fill(0);
  for (const e of edges) {
    const a = index.get(e.from);
    const b = index.get(e.to);
    if (a === undefined || b === undefined || a === b) continue;
    out[a].push(b);
    indeg[b]++;
  }
  const rank = new Array(boxes.length).fill(0);
  const queue: number[] = [];
  indeg.forEach((d, i) => d === 0 && queue.push(i));
  for (let q = 0; q < queue.length; q++) {
    const i = queue[q];
    for (const j of out[i]) {
      rank[j] = Math.max(rank[j], rank[i] + 1);
      if (--indeg[j] === 0) queue.push(j);
    }
  }
  const rows: number[][] = [];
  boxes.forEach((_, i) => (rows[rank[i]] ??= []).push(i));
  const positions: { id: string; x: number; y: number }[] = new Array(boxes.length);
  let y = 16 + CLUSTER_LABEL;
  let width = 0;
  for (const row of rows) {
    if (!row) continue;
    let x = 16;
    let h = 0;
    for (const i of row) {
      const b = boxes[i];
      // A rank wider than the screen wraps (a layer of 234 Constants side by side was a 1-pixel strip after Fit).
      if (x > 16 && x + b.width > ROW_WIDTH) {
        width = Math.max(width, x);
        x = 16;
        y += h + 24;
        h = 0;
      }
      positions[i] = { id: b.id, x: x + b.width / 2, y: y + b.height / 2 };
      x += b.width + 24;
      h = Math.max(h, b.height);
    }
    width = Math.max(width, x);
    y += h + 36;
  }
  const at = new Map(positions.map((p) => [p.id, p]));
  const paths = edges
    .filter((e) => at.has(e.from) && at.has(e.to))
    .map((e) => ({ from: e.from, to: e.to, points: [at.get(e.from)!, at.get(e.to)!] }));
  return { id, positions, paths, clusters: frames(req, at), width: width + CLUSTER_PAD, height: y };
}

const DAGRE_LIMIT = 500;

self.onmessage = (e: MessageEvent<LayoutRequest>) => {
  let answer: LayoutAnswer;
  try {
    answer = e.data.boxes.length > DAGRE_LIMIT ? layered(e.data) : dagreLayout(e.data);
  } catch (err) {
    answer = {
      id: e.data.id,
      positions: [],
      paths: [],
      clusters: [],
      width: 0,
      height: 0,
      error: `layout failed: ${(err as Error).message}`,
    };
  }
  (self as unknown as Worker).postMessage(answer);
};

function dagreLayout(req: LayoutRequest): LayoutAnswer {
  const { id, boxes, edges } = req;
  const clusters = boxes.some((b) => b.parent !== undefined) ? (req.clusters ?? []) : [];
  const g = new dagre.graphlib.Graph({ compound: clusters.length > 0 });
  g.setGraph({ rankdir: 'TB', nodesep: 24, ranksep: 36, marginx: 16, marginy: 16 + CLUSTER_LABEL });
  g.setDefaultEdgeLabel(() => ({}));
  for (const c of clusters) g.setNode(c.id, {});
  for (const c of clusters) if (c.parent) g.setParent(c.id, c.parent);
  for (const b of boxes) {
    g.setNode(b.id, { width: b.width, height: b.height });
    if (b.parent && g.hasNode(b.parent)) g.setParent(b.id, b.parent);
  }
  for (const ed of edges) if (g.hasNode(ed.from) && g.hasNode(ed.to)) g.setEdge(ed.from, ed.to);
  dagre.layout(g);
  const positions = boxes.map((b) => {
    const n = g.node(b.id);
    return { id: b.id, x: n.x, y: n.y };
  });
  const paths = g
    .edges()
    .map((ed) => ({ from: ed.v, to: ed.w, points: g.edge(ed).points as { x: number; y: number }[] }));
  const graph = g.graph();
  // dagre sizes clusters around their members; frames() adds the same padding and room for the name everywhere.
  const at = new Map(positions.map((p) => [p.id, p]));
  return {
    id,
    positions,
    paths,
    clusters: frames(req, at),
    width: (graph.width ?? 0) + CLUSTER_PAD,
    height: (graph.height ?? 0) + CLUSTER_PAD,
  };
}
