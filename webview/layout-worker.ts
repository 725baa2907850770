/// <reference lib="webworker" />
import dagre from '@dagrejs/dagre';

import type { LayoutAnswer, LayoutRequest } from '../src/protocol';

/** Lays out a graph with dagre off the UI thread: boxes in, positions out (or the error, by id). */

/**
 * Big graphs (dagre recurses and overflows the stack past a few thousand boxes): a layered layout
 * of our own — ranks by longest path from the sources (Kahn's order, no recursion), boxes of a rank
 * side by side, straight edges.
 */
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
  let y = 16;
  let width = 0;
  for (const row of rows) {
    if (!row) continue;
    let x = 16;
    let h = 0;
    for (const i of row) {
      const b = boxes[i];
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
  return { id, positions, paths, width, height: y };
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
      width: 0,
      height: 0,
      error: `layout failed: ${(err as Error).message}`,
    };
  }
  (self as unknown as Worker).postMessage(answer);
};

function dagreLayout(req: LayoutRequest): LayoutAnswer {
  const { id, boxes, edges } = req;
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'TB', nodesep: 24, ranksep: 36, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const b of boxes) g.setNode(b.id, { width: b.width, height: b.height });
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
  return { id, positions, paths, width: graph.width ?? 0, height: graph.height ?? 0 };
}
