import type { Link } from '../hardware/catalog';

/**
 * α–β collective costs (ring algorithms, as NCCL uses for large messages), per GPU:
 *   all-reduce      2(n−1)/n · S/B + 2(n−1)·α
 *   all-gather      (n−1)/n · S/B + (n−1)·α        (S = the full, gathered size)
 *   reduce-scatter  (n−1)/n · S/B + (n−1)·α        (S = the full, unreduced size)
 *   point-to-point  S/B + α
 * B is the link's per-direction bandwidth times its measured efficiency. A group whose ranks span
 * nodes runs k parallel rings (one per NIC rail, k = its ranks per node), so its bottleneck is
 * min(NVLink, k × NIC) — hierarchical topology without a separate algorithm.
 */
export interface GroupTopology {
  size: number;
  /** Ranks of the group inside one node. */
  perNode: number;
  intra: Link;
  inter: Link;
}

export function effectiveBandwidth(g: GroupTopology): { bytesPerSecond: number; latencyS: number } {
  const intra = g.intra.bandwidthGBps * 1e9 * g.intra.efficiency;
  if (g.perNode >= g.size) return { bytesPerSecond: intra, latencyS: g.intra.latencyUs * 1e-6 };
  const inter = g.inter.bandwidthGBps * 1e9 * g.inter.efficiency * g.perNode;
  return { bytesPerSecond: Math.min(intra, inter), latencyS: g.inter.latencyUs * 1e-6 };
}

export function allReduceSeconds(bytes: number, g: GroupTopology): number {
  if (g.size <= 1 || bytes <= 0) return 0;
  const { bytesPerSecond, latencyS } = effectiveBandwidth(g);
  return (((2 * (g.size - 1)) / g.size) * bytes) / bytesPerSecond + 2 * (g.size - 1) * latencyS;
}

export function allGatherSeconds(bytes: number, g: GroupTopology): number {
  if (g.size <= 1 || bytes <= 0) return 0;
  const { bytesPerSecond, latencyS } = effectiveBandwidth(g);
  return (((g.size - 1) / g.size) * bytes) / bytesPerSecond + (g.size - 1) * latencyS;
}

export const reduceScatterSeconds = allGatherSeconds;

export function p2pSeconds(bytes: number, link: Link): number {
  if (bytes <= 0) return 0;
  return bytes / (link.bandwidthGBps * 1e9 * link.efficiency) + link.latencyUs * 1e-6;
}

/**
 * All-to-all (expert-parallel dispatch / combine): each GPU sends `bytes` in total, an equal share to
 * every member. Shares to peers in the node cross NVLink, the rest this GPU's NIC; the two run at once.
 */
export function allToAllSeconds(bytes: number, g: GroupTopology): number {
  if (g.size <= 1 || bytes <= 0) return 0;
  const share = bytes / g.size;
  const intraPeers = Math.min(g.perNode, g.size) - 1;
  const interPeers = g.size - 1 - intraPeers;
  const intra = (intraPeers * share) / (g.intra.bandwidthGBps * 1e9 * g.intra.efficiency);
  const inter = (interPeers * share) / (g.inter.bandwidthGBps * 1e9 * g.inter.efficiency);
  const latency = (interPeers > 0 ? g.inter.latencyUs : g.intra.latencyUs) * 1e-6;
  return Math.max(intra, inter) + latency;
}

/** The link a group's neighbours talk over: NVLink when the whole group is inside a node, else the network. */
export function groupLink(g: GroupTopology): GroupTopology['intra'] {
  return g.perNode >= g.size ? g.intra : g.inter;
}
