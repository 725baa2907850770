import * as assert from 'assert';
import { simulate, simulateBounded, type Schedule, type StageTimes } from '../../src/engine/cost/schedule';

const uniform = (p: number, f = 1, b = 2, send = 0.01): StageTimes[] =>
  Array.from({ length: p }, () => ({ forward: f, backward: b, sendNext: send, sendPrev: send }));

describe('bounded schedule simulation (work follows the plan size, with a stated approximation past a cap)', () => {
  it('under the cap it is the exact simulation', () => {
    const stages = uniform(4);
    const exact = simulate('1f1b', stages, 16);
    const bounded = simulateBounded('1f1b', stages, 16);
    assert.strictEqual(bounded.approximation, undefined);
    assert.deepStrictEqual(bounded, exact);
  });

  for (const [schedule, v] of [
    ['1f1b', 1],
    ['gpipe', 1],
    ['interleaved', 2],
  ] as [Schedule, number][]) {
    it(`${schedule}: past the cap, uniform stages extrapolate to the exact makespan and bubble`, () => {
      const stages = uniform(8, 0.5, 1);
      const m = 256;
      const exact = simulate(schedule, stages, m, v);
      const bounded = simulateBounded(schedule, stages, m, v, 2 * 8 * 64 * v);
      assert.match(bounded.approximation ?? '', /simulated for \d+ of 256 micro-batches/);
      assert.ok(
        Math.abs(bounded.makespan - exact.makespan) / exact.makespan < 1e-3,
        `${bounded.makespan} vs ${exact.makespan}`,
      );
      assert.ok(Math.abs(bounded.bubbleFraction - exact.bubbleFraction) < 1e-3);
      assert.ok(bounded.events.length < exact.events.length);
    });
  }

  it('past the cap, uneven stages stay within 2% of the exact makespan (the slowest stage sets the pace)', () => {
    const stages = uniform(6).map((s, i) => ({ ...s, forward: 0.5 + 0.1 * i, backward: 1 + 0.2 * ((i * 7) % 5) }));
    const exact = simulate('1f1b', stages, 400);
    const bounded = simulateBounded('1f1b', stages, 400, 1, 2 * 6 * 40);
    assert.ok(bounded.approximation);
    assert.ok(
      Math.abs(bounded.makespan - exact.makespan) / exact.makespan < 0.02,
      `${bounded.makespan} vs ${exact.makespan}`,
    );
  });

  it('more stages than the cap allows one micro-batch each: the closed form, no timeline', () => {
    const stages = uniform(1000, 1, 2, 0);
    const bounded = simulateBounded('1f1b', stages, 1000, 1, 1000);
    assert.match(bounded.approximation ?? '', /closed form/);
    assert.strictEqual(bounded.events.length, 0);
    // (m + p − 1)(f + b): Narayanan et al.'s 1F1B pipeline, bubble (p − 1)/(m + p − 1).
    assert.strictEqual(bounded.makespan, (1000 + 999) * 3);
    assert.ok(Math.abs(bounded.bubbleFraction - 999 / 1999) < 1e-12);
  });
});
