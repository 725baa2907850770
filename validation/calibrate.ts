/**
 * `npm run calibrate`: fits each kernel stack's sustained GEMM fraction (profiles.ts SUSTAINED) on
 * the calibration runs of validation/runs.json — the value that minimizes the mean |log(predicted ÷
 * published step time)| over that stack's runs (golden-section search; the step time is not exactly
 * inverse in it, since communication and memory-bound kernels do not scale with it). Prints the fit;
 * the constants in profiles.ts are set from it by hand, so a change of data or physics shows up
 * here first. Validation runs are never read.
 */
import { PROFILES, SUSTAINED, type KernelStack } from '../src/engine/cost/profiles';
import { evaluate, loadRuns, type PublishedRun } from './validate';

function meanAbsLog(runs: PublishedRun[], stack: KernelStack, sustained: number): number {
  let sum = 0;
  for (const run of runs) sum += Math.abs(Math.log1p(evaluate(run, { [stack]: sustained }).error));
  return sum / runs.length;
}

export function fitStack(runs: PublishedRun[], stack: KernelStack): { sustained: number; meanAbsLog: number } {
  let lo = 0.4;
  let hi = 1.2;
  const phi = (Math.sqrt(5) - 1) / 2;
  let a = hi - phi * (hi - lo);
  let b = lo + phi * (hi - lo);
  let fa = meanAbsLog(runs, stack, a);
  let fb = meanAbsLog(runs, stack, b);
  for (let i = 0; i < 40 && hi - lo > 1e-4; i++) {
    if (fa < fb) {
      hi = b;
      b = a;
      fb = fa;
      a = hi - phi * (hi - lo);
      fa = meanAbsLog(runs, stack, a);
    } else {
      lo = a;
      a = b;
      fa = fb;
      b = lo + phi * (hi - lo);
      fb = meanAbsLog(runs, stack, b);
    }
  }
  const sustained = (lo + hi) / 2;
  return { sustained, meanAbsLog: meanAbsLog(runs, stack, sustained) };
}

if (require.main === module) {
  const data = loadRuns();
  const calibration = data.runs.filter((r) => r.set === 'calibration' && !r.notFitted);
  for (const stack of Object.keys(SUSTAINED) as KernelStack[]) {
    const runs = calibration.filter((r) => PROFILES[r.plan.training!.framework ?? 'megatron-core'].stack === stack);
    if (!runs.length) {
      console.log(`${stack}: no calibration runs`);
      continue;
    }
    const fit = fitStack(runs, stack);
    console.log(
      `${stack}: sustained ${fit.sustained.toFixed(3)} (now ${SUSTAINED[stack]}), mean |log error| ${(fit.meanAbsLog * 100).toFixed(2)}% over ${runs.length} runs (${[...new Set(runs.map((r) => r.id.split('-')[0]))].join(', ')})`,
    );
  }
}
