import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import {
  SPEED,
  decodeStepSeconds,
  prefillSeconds,
  type DeviceWork,
  type SpeedConstants,
} from '../../src/engine/cost/device-speed';
import { deviceWork } from '../../src/engine/cost/inference-devices';
import { kvLayerBytes } from '../../src/engine/cost/llamacpp';
import { hfConfigToSpec } from '../../src/engine/formats/hf-config';
import { resolveDevice, type DeviceSpec, type SpeedClass } from '../../src/engine/hardware/devices';
import { synthesizeGguf } from '../../src/engine/quant/gguf-filetypes';
import { REPO } from '../helpers';

interface Point {
  bench: number;
  device: { gpu?: string; cpu?: string; tflops?: number };
  model: string;
  fileType: string;
  test: 'prefill' | 'decode';
  tokens?: number;
  context?: number;
  tps: number;
  set: 'fit' | 'holdout';
  note?: string;
}

const speed = JSON.parse(fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'llamacpp', 'speed.json'), 'utf8'));
const bench = JSON.parse(fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'llamacpp', 'bench.json'), 'utf8'));
const points: Point[] = speed.points;

const works = new Map<Point, { device: DeviceSpec; work: DeviceWork[] }>();

/** The point's model on its device, as the engine places it (all layers on the one device). */
function workOf(p: Point): { device: DeviceSpec; work: DeviceWork[] } {
  let w = works.get(p);
  if (!w) {
    const device = resolveDevice(p.device) as DeviceSpec;
    const model = synthesizeGguf(hfConfigToSpec(speed.models[p.model], p.model), p.fileType);
    const layerDevice = Array(model.nLayer + 1).fill(device.kind !== 'cpu' ? 0 : -1);
    const kv = kvLayerBytes(model, 1, 'f16', 'f16');
    w = { device, work: deviceWork(model, layerDevice, [{ spec: device }], device, kv).work };
    works.set(p, w);
  }
  return w;
}

/** Tokens/s the engine predicts for a point, with `c` in place of its class's constants. */
function predict(p: Point, c?: SpeedConstants): number {
  const { device, work } = workOf(p);
  const saved = SPEED[device.speedClass];
  if (c) SPEED[device.speedClass] = c;
  try {
    if (p.test === 'decode') {
      return 1 / decodeStepSeconds(work, { batch: 1, context: p.context!, crossings: [] }).seconds;
    }
    return p.tokens! / prefillSeconds(work, { batch: 1, tokens: p.tokens!, crossings: [] }).seconds;
  } finally {
    SPEED[device.speedClass] = saved;
  }
}

const classOf = (p: Point) => (resolveDevice(p.device) as DeviceSpec).speedClass;

/**
 * Least squares on log(tokens/s) over a grid: decode efficiency and per-layer overhead, then prefill
 * efficiency. `fixedEfficiency`: fit the per-layer overhead alone (a class with too few points to fit both).
 */
function fit(cls: SpeedClass, fixedEfficiency?: number): SpeedConstants {
  const base = SPEED[cls];
  const dec = points.filter((p) => p.set === 'fit' && p.test === 'decode' && classOf(p) === cls);
  const pre = points.filter((p) => p.set === 'fit' && p.test === 'prefill' && classOf(p) === cls);
  const loss = (ps: Point[], c: SpeedConstants) => ps.reduce((a, p) => a + Math.log(predict(p, c) / p.tps) ** 2, 0);
  let best = { ...base };
  if (dec.length >= 2) {
    let bestLoss = Infinity;
    for (
      let e = fixedEfficiency ? fixedEfficiency * 100 : 30;
      e <= (fixedEfficiency ? fixedEfficiency * 100 : 100);
      e++
    ) {
      for (let t = 0; t <= 50; t++) {
        const c = { ...base, decodeEfficiency: e / 100, layerOverheadMs: t / 100 };
        const l = loss(dec, c);
        if (l < bestLoss) [bestLoss, best] = [l, c];
      }
    }
  }
  if (pre.length >= 2) {
    let bestLoss = Infinity;
    let bestP = best.prefillEfficiency;
    for (let e = 5; e <= 150; e++) {
      const l = loss(pre, { ...best, prefillEfficiency: e / 100 });
      if (l < bestLoss) [bestLoss, bestP] = [l, e / 100];
    }
    best = { ...best, prefillEfficiency: bestP };
  }
  return best;
}

describe('inference speed per device class: fitted on published llama.cpp results, checked on a held-out set', () => {
  it(`${points.length} points (${points.filter((p) => p.set === 'fit').length} fit, ${points.filter((p) => p.set === 'holdout').length} held out) from bench.json`, () => {
    assert.ok(points.length >= 15);
    for (const p of points) {
      const b = bench.bench[p.bench];
      assert.ok(b, `bench ${p.bench}`);
      assert.ok(Math.abs(parseFloat(b.t_s) - p.tps) / p.tps < 0.001, `point ${p.bench}: ${b.t_s} vs ${p.tps}`);
    }
  });

  it('the engine constants are the optimum of the fit (grid of 0.01 in efficiency, 0.01 ms per layer)', () => {
    const lines: string[] = [];
    const fits = {
      nvidia: fit('nvidia'),
      apple: fit('apple'),
      // Two points: the per-layer overhead alone, with the efficiency of the CUDA consumer parts.
      'nvidia-datacenter': fit('nvidia-datacenter', SPEED.nvidia.decodeEfficiency),
    } as Record<string, SpeedConstants>;
    for (const cls of Object.keys(fits) as SpeedClass[]) {
      const f = fits[cls];
      const c = SPEED[cls];
      lines.push(
        `        ${cls.padEnd(18)} decode efficiency ${f.decodeEfficiency.toFixed(2)} (engine ${c.decodeEfficiency}), per-layer ${f.layerOverheadMs.toFixed(2)} ms (engine ${c.layerOverheadMs}), prefill efficiency ${f.prefillEfficiency.toFixed(2)} (engine ${c.prefillEfficiency})`,
      );
    }
    console.log(lines.join('\n'));
    for (const cls of Object.keys(fits) as SpeedClass[]) {
      const f = fits[cls];
      const c = SPEED[cls];
      assert.ok(Math.abs(f.decodeEfficiency - c.decodeEfficiency) <= 0.011, `${cls} decode efficiency`);
      assert.ok(Math.abs(f.layerOverheadMs - c.layerOverheadMs) <= 0.011, `${cls} per-layer overhead`);
      if (cls !== 'nvidia-datacenter') {
        assert.ok(Math.abs(f.prefillEfficiency - c.prefillEfficiency) <= 0.011, `${cls} prefill efficiency`);
      }
    }
  });

  for (const set of ['fit', 'holdout'] as const) {
    it(`${set === 'fit' ? 'fit set: shown' : 'held-out set: decode within 20%'}; prefill shown`, () => {
      const rows: string[] = [];
      const errs: { test: string; err: number }[] = [];
      for (const p of points.filter((x) => x.set === set)) {
        const pred = predict(p);
        const err = pred / p.tps - 1;
        errs.push({ test: p.test, err });
        const dev = p.device.gpu ?? p.device.cpu!;
        rows.push(
          `        ${String(p.bench).padStart(3)} ${dev.padEnd(16)} ${p.model.padEnd(15)} ${p.fileType.padEnd(7)} ${p.test.padEnd(8)} ${p.tps.toFixed(1).padStart(9)} ${pred.toFixed(1).padStart(9)} ${((err * 100).toFixed(1) + '%').padStart(7)}${Math.abs(err) > 0.2 && p.test === 'decode' ? '  > 20%' : ''}`,
        );
      }
      const dec = errs.filter((e) => e.test === 'decode').map((e) => Math.abs(e.err));
      const pre = errs.filter((e) => e.test === 'prefill').map((e) => Math.abs(e.err));
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
      console.log(
        `        ${'#'.padStart(3)} ${'device'.padEnd(16)} ${'model'.padEnd(15)} ${'type'.padEnd(7)} ${'test'.padEnd(8)} ${'tokens/s'.padStart(9)} ${'predicted'.padStart(9)} ${'error'.padStart(7)}\n` +
          rows.join('\n') +
          `\n        decode: ${dec.filter((e) => e <= 0.2).length} of ${dec.length} within 20%, median |error| ${(median(dec) * 100).toFixed(1)}%, worst ${(Math.max(...dec) * 100).toFixed(1)}%` +
          `; prefill: median |error| ${(median(pre) * 100).toFixed(1)}%, worst ${(Math.max(...pre) * 100).toFixed(1)}%`,
      );
      if (set === 'holdout') {
        assert.ok(
          dec.every((e) => e <= 0.2),
          'decode within 20%',
        );
      }
    });
  }
});
