#!/usr/bin/env node
import { InputError } from './engine/errors';
import { formatInspect } from './engine/report/inspect-text';
import { inspectFile } from './node/inspect-file';
import { checkFile, estimatePlanFile } from './node/plan-file';
import { quantFile } from './node/quant-file';
import { formatActivations, formatAssignment, formatQuant } from './engine/report/quant-text';
import { assignmentReport } from './engine/check/precision';
import { validatePlan, type Plan } from './engine/plan/plan';
import { readTextFile } from './node/plan-file';
import { calibrateFile } from './node/calibrate';
import { formatEstimate } from './engine/report/estimate-text';
import { formatVerify } from './engine/report/verify-text';
import { verifyFile } from './node/verify-file';

const USAGE = `usage: layerplan <command> [options]

commands:
  inspect <model> [--json] [--dim name=value ...]   graph summary: ops, parameters, dtypes, layers
                                                     (--dim binds a symbolic dim, e.g. --dim batch=8)
  estimate <plan.json> [--json]                      memory per GPU, step time, communication, pipeline bubble
  quant <model> [--json] [--formats a,b] [--tensors glob] [--clip] [--activations [--inputs dir | --batches N] [--dim k=v]]
        [--plan plan.json] [--sample fraction]       quantization error of the real weights per format;
                                                     --activations calibrates activations with onnxruntime;
                                                     --plan reports the plan's mixed-precision assignment
  check <file> [--json] [--world-size N]             diagnostics for a plan, a Hugging Face config.json or a
                                                     DeepSpeed config (exit 1 when there are errors)
  verify <model> --tensor <name> --format <f> [--json] [--batch N] [--seed N] [--repeats N] [--inputs dir]
                                                     run the quantized layer's WebGPU kernel on the real
                                                     weight (Dawn; SwiftShader where no GPU is): kernel vs
                                                     CPU reference, output error vs the prediction;
                                                     --inputs runs it on the activations your samples
                                                     (input_<i>.pb sets) produce, via onnxruntime
                                                     (exit 1 when it fails; a CPU fallback says so)
options:
  --json      print one JSON document on stdout
  --help      this text`;

interface Args {
  command: string;
  positional: string[];
  json: boolean;
  dims: Record<string, number>;
  worldSize?: number;
  formats?: string[];
  tensors?: string;
  clip: boolean;
  activations: boolean;
  batches?: number;
  plan?: string;
  sample?: number;
  inputs?: string;
  tensor?: string;
  format?: string;
  batch?: number;
  seed?: number;
  repeats?: number;
}

class UsageError extends Error {}

function parseArgs(argv: string[]): Args {
  const args: Args = { command: argv[0] ?? '', positional: [], json: false, dims: {}, clip: false, activations: false };
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') args.json = true;
    else if (a === '--dim') {
      const spec = argv[++i] ?? '';
      const m = /^([^=]+)=(\d+)$/.exec(spec);
      if (!m) throw new UsageError(`--dim expects name=value, got '${spec}'`);
      args.dims[m[1]] = Number(m[2]);
    } else if (a === '--formats') {
      args.formats = (argv[++i] ?? '')
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean);
    } else if (a === '--tensors') args.tensors = argv[++i] ?? '';
    else if (a === '--clip') args.clip = true;
    else if (a === '--activations') args.activations = true;
    else if (a === '--plan') args.plan = argv[++i];
    else if (a === '--inputs') args.inputs = argv[++i];
    else if (a === '--tensor') args.tensor = argv[++i];
    else if (a === '--format') args.format = argv[++i];
    else if (a === '--batch' || a === '--seed' || a === '--repeats') {
      const v = Number(argv[++i]);
      const max = a === '--seed' ? 2 ** 32 - 1 : a === '--batch' ? 64 : 1000;
      if (!Number.isInteger(v) || v < (a === '--repeats' ? 0 : 1) || v > max) {
        throw new UsageError(`${a} expects an integer up to ${max}`);
      }
      args[a.slice(2) as 'batch' | 'seed' | 'repeats'] = v;
    } else if (a === '--sample') {
      const v = Number(argv[++i]);
      if (!(v > 0 && v <= 1)) throw new UsageError('--sample expects a fraction of rows in (0, 1]');
      args.sample = v;
    } else if (a === '--batches') {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v <= 0 || v > 10000) throw new UsageError('--batches expects a positive integer');
      args.batches = v;
    } else if (a === '--world-size') {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v <= 0) throw new UsageError('--world-size expects a positive integer');
      args.worldSize = v;
    } else if (a.startsWith('--')) throw new UsageError(`unknown option ${a}`);
    else args.positional.push(a);
  }
  return args;
}

export async function main(argv: string[]): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`layerplan: ${(e as Error).message}\n`);
    return 2;
  }
  if (!args.command || args.command === '--help' || args.command === 'help') {
    process.stdout.write(USAGE + '\n');
    return args.command ? 0 : 2;
  }
  const file = args.positional[0];
  try {
    switch (args.command) {
      case 'inspect': {
        if (!file) throw new UsageError('inspect needs a model file');
        const report = await inspectFile(file, args.dims);
        if (args.json) process.stdout.write(JSON.stringify(report) + '\n');
        else process.stdout.write(formatInspect(file, report));
        return 0;
      }
      case 'estimate': {
        if (!file) throw new UsageError('estimate needs a plan file');
        const report = await estimatePlanFile(file);
        if (args.json) {
          const { timeline, ...rest } = report;
          process.stdout.write(
            JSON.stringify({
              ...rest,
              timeline: timeline.map((e) => [
                e.stage,
                e.microBatch,
                e.chunk,
                e.pass === 'forward' ? 'F' : 'B',
                e.start,
                e.end,
              ]),
            }) + '\n',
          );
        } else process.stdout.write(formatEstimate(file, report));
        return 0;
      }
      case 'check': {
        if (!file) throw new UsageError('check needs a file');
        const { diagnostics } = await checkFile(file, { worldSize: args.worldSize });
        const out = diagnostics.map(({ severity, message, range, fix }) => ({
          severity,
          message,
          range,
          ...(fix ? { fix } : {}),
        }));
        if (args.json) process.stdout.write(JSON.stringify({ diagnostics: out }) + '\n');
        else if (!out.length) process.stdout.write(`${file}: no problems found\n`);
        else {
          for (const d of out) {
            process.stdout.write(
              `${file}:${d.range.start.line + 1}:${d.range.start.character + 1}: ${d.severity}: ${d.message}${d.fix ? `\n  fix: ${d.fix.title}` : ''}\n`,
            );
          }
        }
        return out.some((d) => d.severity === 'error') ? 1 : 0;
      }
      case 'quant': {
        if (!file) throw new UsageError('quant needs a model file');
        const progress = !args.json && process.stderr.isTTY;
        let precision: Plan['precision'];
        let formats = args.formats;
        if (args.plan) {
          const { plan, issues } = validatePlan(await readTextFile(args.plan, 'plan'));
          const bad = issues.find((x) => x.severity === 'error');
          if (bad || !plan) {
            throw new InputError(
              `${args.plan}:${(bad?.range.start.line ?? 0) + 1}:${(bad?.range.start.character ?? 0) + 1}`,
              bad?.message ?? 'invalid plan',
            );
          }
          precision = plan.precision;
          formats = [
            ...new Set([
              precision?.default ?? 'bf16',
              ...(precision?.rules ?? []).map((r) => r.format),
              ...(formats ?? []),
            ]),
          ];
        }
        const report = await quantFile(file, {
          formats,
          tensors: args.tensors,
          clip: args.clip,
          sample: args.sample,
          onProgress: progress
            ? (d, n, name) => process.stderr.write(`\r\x1b[Kquantizing ${d}/${n} ${name}`)
            : undefined,
        });
        if (progress) process.stderr.write('\r\x1b[K');
        const activations = args.activations
          ? await calibrateFile(file, { batches: args.batches, bindings: args.dims, inputs: args.inputs })
          : undefined;
        const assignment = args.plan ? assignmentReport(report, precision) : undefined;
        if (args.json) {
          process.stdout.write(
            JSON.stringify({
              ...report,
              ...(activations ? { activations } : {}),
              ...(assignment ? { assignment } : {}),
            }) + '\n',
          );
        } else {
          process.stdout.write(
            formatQuant(file, report) +
              (activations ? formatActivations(activations) : '') +
              (assignment ? formatAssignment(args.plan!, assignment) : ''),
          );
        }
        return 0;
      }
      case 'verify': {
        if (!file) throw new UsageError('verify needs a model file');
        if (!args.tensor || !args.format) throw new UsageError('verify needs --tensor <name> and --format <format>');
        const report = await verifyFile(file, {
          tensor: args.tensor,
          format: args.format,
          batch: args.batch,
          seed: args.seed,
          repeats: args.repeats,
          inputs: args.inputs,
        });
        if (args.json) process.stdout.write(JSON.stringify(report) + '\n');
        else process.stdout.write(formatVerify(file, report));
        // 0 verified, 1 failed, 3 no adapter: only the CPU reference ran (DESIGN.md; never a pass).
        return report.outcome === 'fallback' ? 3 : report.pass ? 0 : 1;
      }
      default:
        throw new UsageError(`unknown command '${args.command}' (try --help)`);
    }
  } catch (e) {
    if (e instanceof UsageError) process.stderr.write(`layerplan: ${e.message}\n`);
    else if (e instanceof InputError) process.stderr.write(`${e.message.split('\n')[0]}\n`);
    else if (e instanceof RangeError) process.stderr.write(`${file}: too large or malformed to read (${e.message})\n`);
    else process.stderr.write(`${file ?? 'layerplan'}: ${(e as Error).message ?? String(e)}\n`);
    return 2;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`layerplan: ${String(e)}\n`);
      process.exitCode = 2;
    },
  );
}
