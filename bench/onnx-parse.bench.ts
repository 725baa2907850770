/**
 * `npm run bench`: parse cost of `layerplan inspect` on a generated ~1.3 GB GPT-like model.
 * Prints, from one run: whole-process time and peak RSS for
 *   - inspect on the big model,
 *   - inspect on the same graph with tiny weights (big/tiny should be ~1: cost follows the graph),
 *   - onnx-proto's full decode of the big file (the JS baseline),
 *   - python's onnx.load, when /usr/bin/python3 has onnx.
 * and the ratios between them. Nothing here is asserted: machines are noisy; read the ratios.
 *
 * NODE_EXTRA_CA_CERTS: Node 20 reads and parses that certificate file at every start, before any
 * of the program runs (+50 ms on this sandbox, whose environment sets it to the system's whole CA
 * bundle). Neither command opens a connection, so the rows run without it; where the environment
 * sets it, the main ratio is measured with it too and printed after.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { writeGptModel } from './gpt-writer';

const REPO = path.resolve(__dirname, '..', '..');
const DIR = path.join(os.tmpdir(), 'layerplan-bench');
const RUNS = Number(process.env.LAYERPLAN_BENCH_RUNS ?? 3);
const SPEC = { layers: 24, hidden: 1024, vocab: 32000 };

interface Sample {
  ms: number;
  maxRssBytes: number;
}

function measure(cmd: string, args: string[], env: NodeJS.ProcessEnv = ENV): Sample {
  const started = process.hrtime.bigint();
  const r = spawnSync(cmd, args, {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    env,
  });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  const report = (r.output[3] as string | null) ?? '';
  const rss = report ? JSON.parse(report.trim().split('\n').pop()!).maxRssBytes : NaN;
  return { ms, maxRssBytes: rss };
}

function best(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Sample {
  const samples = Array.from({ length: RUNS }, () => measure(cmd, args, env));
  samples.sort((a, b) => a.ms - b.ms);
  return {
    ms: samples[Math.floor(samples.length / 2)].ms,
    maxRssBytes: Math.max(...samples.map((s) => s.maxRssBytes)),
  };
}

function ensureModel(name: string, tiny: boolean): string {
  fs.mkdirSync(DIR, { recursive: true });
  const file = path.join(DIR, name);
  const stamp = `${file}.spec`;
  const spec = JSON.stringify({ ...SPEC, tiny, v: 2 });
  if (!fs.existsSync(file) || !fs.existsSync(stamp) || fs.readFileSync(stamp, 'utf8') !== spec) {
    process.stderr.write(`writing ${file} …\n`);
    const info = writeGptModel(file, { ...SPEC, tiny });
    fs.writeFileSync(stamp, spec);
    process.stderr.write(
      `  ${info.nodes} nodes, ${info.parameters} parameters, ${(fs.statSync(file).size / 1e9).toFixed(2)} GB\n`,
    );
  }
  return file;
}

function pythonHasOnnx(): boolean {
  const r = spawnSync('/usr/bin/python3', ['-c', 'import onnx'], { stdio: 'ignore' });
  return r.status === 0;
}

/** The environment without NODE_EXTRA_CA_CERTS (see the top). */
const ENV: NodeJS.ProcessEnv = { ...process.env };
delete ENV.NODE_EXTRA_CA_CERTS;

function main(): void {
  const cli = path.join(REPO, 'dist', 'cli.js');
  if (!fs.existsSync(cli)) throw new Error('dist/cli.js is missing: npm run build first');
  const big = ensureModel('gpt-big.onnx', false);
  const tiny = ensureModel('gpt-tiny-weights.onnx', true);
  const preload = path.join(REPO, 'bench', 'peak-rss.js');
  const node = process.execPath;
  const rows: [string, Sample][] = [];
  // dist/cli.js runs from V8's code cache (src/node/code-cache.ts) from its second run on: one run
  // makes the cache, then the figures are a user's every run; the same command without the cache beside it.
  measure(node, ['--require', preload, cli, 'inspect', big, '--json']);
  const inspectBig = best(node, ['--require', preload, cli, 'inspect', big, '--json']);
  rows.push(['layerplan inspect, big model', inspectBig]);
  const noCache = best(node, ['--require', preload, cli, 'inspect', big, '--json'], {
    ...ENV,
    LAYERPLAN_CODE_CACHE: '',
  });
  rows.push(['  the same without the code cache', noCache]);
  const nodeStart = best(node, ['--require', preload, '-e', '0']);
  rows.push(["node -e 0 (Node's own start)", nodeStart]);
  const inspectTiny = best(node, ['--require', preload, cli, 'inspect', tiny, '--json']);
  rows.push(['layerplan inspect, tiny weights', inspectTiny]);
  const protoArgs = [
    '--max-old-space-size=8192',
    '--require',
    preload,
    path.join(REPO, 'bench', 'onnx-proto-load.js'),
    big,
  ];
  const protoBig = best(node, protoArgs);
  rows.push(['onnx-proto read + decode, big', protoBig]);
  if (pythonHasOnnx()) {
    const py =
      'import onnx,sys,resource,os;m=onnx.load(sys.argv[1]);os.write(3,(\'{"maxRssBytes":%d}\\n\'%(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss*1024)).encode())';
    rows.push(['python onnx.load, big', best('/usr/bin/python3', ['-c', py, big])]);
  }
  const size = fs.statSync(big).size;
  console.log(
    `model: ${path.basename(big)} ${(size / 1e9).toFixed(2)} GB (${SPEC.layers} layers, hidden ${SPEC.hidden}); median of ${RUNS} runs, whole process`,
  );
  for (const [label, s] of rows) {
    console.log(
      `  ${label.padEnd(34)} ${s.ms.toFixed(0).padStart(7)} ms   peak RSS ${(s.maxRssBytes / 2 ** 20).toFixed(0).padStart(6)} MiB`,
    );
  }
  console.log('ratios:');
  console.log(
    `  big / tiny weights:          time ${(inspectBig.ms / inspectTiny.ms).toFixed(2)}x   memory ${(inspectBig.maxRssBytes / inspectTiny.maxRssBytes).toFixed(2)}x   (goal <= 1.5)`,
  );
  console.log(
    `  onnx-proto / layerplan:      time ${(protoBig.ms / inspectBig.ms).toFixed(2)}x   memory ${(protoBig.maxRssBytes / inspectBig.maxRssBytes).toFixed(2)}x   (goal >= 8x faster)`,
  );
  console.log(`  onnx-proto / layerplan without the code cache: time ${(protoBig.ms / noCache.ms).toFixed(2)}x`);
  console.log(
    `  beyond Node's own start:     ${(inspectBig.ms - nodeStart.ms).toFixed(0)} ms (without the code cache ${(noCache.ms - nodeStart.ms).toFixed(0)} ms)`,
  );
  const python = rows.find(([label]) => label.startsWith('python'));
  if (python) {
    const py = python[1];
    console.log(
      `  python onnx.load / layerplan: time ${(py.ms / inspectBig.ms).toFixed(2)}x   memory ${(py.maxRssBytes / inspectBig.maxRssBytes).toFixed(2)}x`,
    );
  }
  console.log(
    `  layerplan peak RSS on the big model: ${(inspectBig.maxRssBytes / 2 ** 20).toFixed(0)} MiB (goal <= 200 MiB)`,
  );
  const ca = process.env.NODE_EXTRA_CA_CERTS;
  if (ca) {
    const withCa = { ...ENV, NODE_EXTRA_CA_CERTS: ca };
    const start = best(node, ['--require', preload, '-e', '0'], withCa);
    const inspectCa = best(node, ['--require', preload, cli, 'inspect', big, '--json'], withCa);
    const protoCa = best(node, protoArgs, withCa);
    console.log(
      `this environment sets NODE_EXTRA_CA_CERTS=${ca}: Node reads it at every start (node -e 0 ${start.ms.toFixed(0)} ms with it, ${nodeStart.ms.toFixed(0)} ms without); with it:`,
    );
    console.log(
      `  layerplan inspect ${inspectCa.ms.toFixed(0)} ms, onnx-proto ${protoCa.ms.toFixed(0)} ms: onnx-proto / layerplan ${(protoCa.ms / inspectCa.ms).toFixed(2)}x, ${(inspectCa.ms - start.ms).toFixed(0)} ms beyond Node's own start`,
    );
  }
}

main();
