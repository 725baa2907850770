import { promises as fsp } from 'fs';
import type { Objective } from '../engine/search/optimize';
import { UsageError, json, listOption, needFile, out, type Command } from './command';

const secs = (x: number) => (x >= 1 ? `${x.toFixed(2)} s` : `${(x * 1e3).toFixed(1)} ms`);
const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;

export const optimizeCommand: Command = {
  name: 'optimize',
  usage: `optimize <plan.json> [--objective time|gpus|cost] [--target-seconds S] [--top K] [--lock a.b,c.d]
        [--formats a,b] [--headroom F] [--write] [--json]
                                                     search parallel layouts, stage split and per-layer
                                                     precision for the fastest (time), fewest-GPU (gpus, with
                                                     --target-seconds) or cheapest (cost) plans; --lock keeps
                                                     fields (JSON paths) as the plan has them; --write puts
                                                     the best candidate's fields into the plan file`,
  options: {
    objective: { type: 'string' },
    'target-seconds': { type: 'string' },
    top: { type: 'string' },
    lock: { type: 'string' },
    formats: { type: 'string' },
    headroom: { type: 'string' },
    write: { type: 'boolean' },
  },
  async run(positional, values) {
    const { applyCandidate, optimizeFile } = require('../node/optimize-file') as typeof import('../node/optimize-file');
    const file = needFile(positional, 'optimize', 'a plan file');
    const objective = (values.objective ?? 'time') as string;
    if (!['time', 'gpus', 'cost'].includes(objective)) {
      throw new UsageError(`--objective expects time, gpus or cost, got '${objective}'`);
    }
    const target = values['target-seconds'] === undefined ? undefined : Number(values['target-seconds']);
    if (target !== undefined && !(target > 0)) throw new UsageError('--target-seconds expects a positive number');
    if (objective === 'gpus' && target === undefined) throw new UsageError('--objective gpus needs --target-seconds');
    const top = values.top === undefined ? 10 : Number(values.top);
    if (!Number.isInteger(top) || top < 1 || top > 1000) {
      throw new UsageError('--top expects an integer from 1 to 1000');
    }
    const headroom = values.headroom === undefined ? 0 : Number(values.headroom);
    if (!(headroom >= 0 && headroom < 1)) throw new UsageError('--headroom expects a fraction in [0, 1)');
    const { result, text } = await optimizeFile(file, {
      objective: objective as Objective,
      targetSeconds: target,
      top,
      locks: listOption(values, 'lock'),
      formats: listOption(values, 'formats'),
      headroom,
    });
    const best = result.candidates[0];
    if (values.write && best) await fsp.writeFile(file, applyCandidate(text, best));
    if (values.json) {
      json({
        searched: result.searched,
        evaluated: result.evaluated,
        pruned: result.pruned,
        seconds: result.seconds,
        objective: result.objective,
        candidates: result.candidates,
        pareto: result.pareto,
        current: result.current,
        notes: result.notes,
        complete: result.complete,
        ...(values.write ? { wrote: best ? file : null } : {}),
      });
      return best ? 0 : 1;
    }
    out(
      `${file}: ${result.searched.toLocaleString('en-US')} configurations, ${result.evaluated} estimated (${((result.pruned / Math.max(1, result.searched)) * 100).toFixed(1)}% pruned) in ${result.seconds.toFixed(2)} s\n`,
    );
    if (result.current) {
      out(
        `current plan: ${secs(result.current.iterationSeconds)} per step, ${gib(result.current.peakMemoryBytes)} peak${result.current.fits ? '' : ' (does not fit)'}\n`,
      );
    }
    out(`\n  #  step        GPUs  peak       MFU    SQNR     binds\n`);
    result.candidates.forEach((c, i) => {
      out(
        `${String(i + 1).padStart(3)}${result.pareto.includes(i) ? '*' : ' '} ${secs(c.iterationSeconds).padEnd(11)} ${String(c.gpus).padEnd(5)} ${gib(c.peakMemoryBytes).padEnd(10)} ${(c.mfu * 100).toFixed(1).padStart(5)}%  ${c.outputSqnrDb === null ? '—'.padEnd(7) : `${c.outputSqnrDb.toFixed(1)} dB`.padEnd(7)}  ${c.binds.join(', ')}\n      ${c.why}\n`,
      );
    });
    if (!result.candidates.length) out('no plan found\n');
    out(`\n* on the Pareto front (step time, memory, output error)\n`);
    for (const n of result.notes) out(`note: ${n}\n`);
    if (values.write) out(best ? `wrote the best plan's fields into ${file}\n` : `nothing written\n`);
    return best ? 0 : 1;
  },
};
