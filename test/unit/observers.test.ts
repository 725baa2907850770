import * as assert from 'assert';
import { TensorObserver, activationError } from '../../src/engine/quant/observers';
import { rng } from '../helpers';

function observe(x: Float32Array): TensorObserver {
  const o = new TensorObserver();
  o.observeRange(x);
  o.observeHistogram(x);
  return o;
}

describe('activation observers', () => {
  const r = rng(9);
  const gauss = Float32Array.from(
    { length: 200000 },
    () => Math.sqrt(-2 * Math.log(r() || 1e-12)) * Math.cos(2 * Math.PI * r()),
  );
  it('percentile: 99.99% of |N(0,1)| lies below ~3.9', () => {
    const t = observe(gauss).percentile(0.9999);
    assert.ok(Math.abs(t - 3.89) < 0.25, `${t}`);
  });
  it('entropy and percentile clip rare outliers min-max keeps; the MSE observer has the least squared error of all', () => {
    const x = Float32Array.from(gauss);
    for (let i = 0; i < 20; i++) x[i * 997] = 60; // rare large outliers
    const o = observe(x);
    const mm = o.range('minmax');
    for (const name of ['entropy', 'percentile'] as const) {
      const rg = o.range(name);
      assert.ok(rg.max < mm.max / 3, `${name} threshold ${rg.max}`);
    }
    const err = (name: 'minmax' | 'entropy' | 'mse' | 'percentile') => {
      const e = activationError(x, o.range(name));
      return 10 * Math.log10(e.signal / e.noise);
    };
    for (const other of ['minmax', 'entropy', 'percentile'] as const) {
      assert.ok(err('mse') >= err(other) - 0.2, `mse ${err('mse')} vs ${other} ${err(other)}`);
    }
  });
  it('uses [0, T] for tensors that are never negative', () => {
    const relu = Float32Array.from(gauss, (v) => Math.max(0, v));
    const o = observe(relu);
    for (const name of ['minmax', 'percentile', 'entropy', 'mse'] as const) {
      assert.strictEqual(o.range(name).min, 0, name);
    }
  });
  it('EMA follows per-batch ranges with momentum 0.01', () => {
    const o = new TensorObserver();
    o.observeRange([-1, 1]);
    o.observeRange([-3, 3]);
    assert.ok(Math.abs(o.emaMax - 1.02) < 1e-12 && Math.abs(o.emaMin + 1.02) < 1e-12);
    assert.strictEqual(o.max, 3);
  });
});
