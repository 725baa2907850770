/**
 * Display units: the one place numbers become text, for the CLI, the graph view, the planner and
 * the exported reports alike — so one parameter count reads the same everywhere.
 *  - counts (parameters, FLOPs, elements): SI letters k, M, G, T (1.50G parameters, 17.6M FLOPs);
 *  - bytes: binary prefixes, the unit chosen by size (535.49 KiB, 14.96 GiB);
 *  - memory against a GPU's capacity: always GiB, so bars and limits compare at a glance;
 *  - durations: s, ms or µs by size.
 */

/** A count with an SI letter: 137k, 1.35M, 1.50G, 2.10T; `unit` is appended (1.2GFLOP/s). */
export function formatCount(n: number, unit = ''): string {
  const abs = Math.abs(n);
  const [div, suffix] =
    abs >= 1e12 ? [1e12, 'T'] : abs >= 1e9 ? [1e9, 'G'] : abs >= 1e6 ? [1e6, 'M'] : abs >= 1e3 ? [1e3, 'k'] : [1, ''];
  const v = n / div;
  return `${div === 1 ? String(Math.round(v)) : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)}${suffix}${unit}`;
}

/** Bytes with a binary prefix chosen by size: 512 B, 535.49 KiB, 14.96 GiB. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 2 : 0)} ${units[i]}`;
}

export const GiB = 2 ** 30;

/** Memory in GiB (two decimals under 10 GiB, one above), as the memory bars and capacities show it. */
export function formatGiB(bytes: number): string {
  return `${(bytes / GiB).toFixed(bytes < 10 * GiB ? 2 : 1)} GiB`;
}

/** A duration: 1.42 s, 655.19 ms, 12 µs. */
export function formatSeconds(s: number): string {
  if (Math.abs(s) >= 1) return `${s.toFixed(2)} s`;
  if (Math.abs(s) >= 1e-3) return `${(s * 1e3).toFixed(2)} ms`;
  return `${(s * 1e6).toFixed(0)} µs`;
}

/** A signal-to-noise ratio in dB; exact (lossless) where there is no noise. */
export function formatDb(db: number | null): string {
  return db === null || !Number.isFinite(db) ? 'lossless' : `${db.toFixed(2)} dB`;
}
