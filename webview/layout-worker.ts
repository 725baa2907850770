/// <reference lib="webworker" />
import dagre from '@dagrejs/dagre';

/** Lays out a graph with dagre off the UI thread: boxes in, positions out. */
interface LayoutRequest {
  id: number;
  boxes: { id: string; width: number; height: number }[];
  edges: { from: string; to: string }[];
}

self.onmessage = (e: MessageEvent<LayoutRequest>) => {
  const { id, boxes, edges } = e.data;
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
  const paths = g.edges().map((ed) => ({ from: ed.v, to: ed.w, points: g.edge(ed).points as { x: number; y: number }[] }));
  const graph = g.graph();
  (self as unknown as Worker).postMessage({ id, positions, paths, width: graph.width ?? 0, height: graph.height ?? 0 });
};
