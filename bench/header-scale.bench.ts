/**
 * `npm run bench`: how opening a safetensors file grows with the number of tensors its header declares — up to
 * 200,000 (a header of about 20 MB) — in time and memory, each case in a fresh process. The baseline is the
 * smallest header of the same run; growth should be about linear in the tensors.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const COUNTS = [1_000, 10_000, 100_000, 200_000];
const DIR = path.join(os.tmpdir(), 'layerplan-bench');

/** A checkpoint of `n` 4 × 4 fp16 tensors named like a transformer's (model.layers.<i>.<part>.weight). */
function writeCheckpoint(n: number): string {
  const file = path.join(DIR, `header-${n}.safetensors`);
  if (fs.existsSync(file)) return file;
  fs.mkdirSync(DIR, { recursive: true });
  const header: Record<string, unknown> = {};
  const bytes = 4 * 4 * 2;
  for (let i = 0; i < n; i++) {
    header[`model.layers.${Math.floor(i / 8)}.part${i % 8}.weight`] = {
      dtype: 'F16',
      shape: [4, 4],
      data_offsets: [i * bytes, (i + 1) * bytes],
    };
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, json, Buffer.alloc(n * bytes)]));
  return file;
}

const child = `
const { inspectFile } = require(${JSON.stringify(path.join(__dirname, '..', 'src', 'node', 'inspect-file.js'))});
const t0 = process.hrtime.bigint();
inspectFile(process.argv[1]).then((r) => {
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  process.stdout.write(JSON.stringify({ ms, rss: process.resourceUsage().maxRSS / 1024, layers: r.layers.length }));
});
`;

console.log('header scale: inspect of a safetensors file by the tensors its header declares (fresh process each)');
const results = COUNTS.map((n) => {
  const file = writeCheckpoint(n);
  const out = execFileSync(process.execPath, ['-e', child, file], { encoding: 'utf8', maxBuffer: 1 << 20 });
  return { n, mb: fs.statSync(file).size / 1e6, ...(JSON.parse(out) as { ms: number; rss: number; layers: number }) };
});
const base = results[0];
for (const r of results) {
  console.log(
    `  ${String(r.n).padStart(7)} tensors (${r.mb.toFixed(1)} MB file, ${r.layers} layers): ${r.ms.toFixed(0).padStart(5)} ms,` +
      ` peak ${r.rss.toFixed(0).padStart(4)} MiB; ${(r.ms / base.ms).toFixed(1)}× the time of the smallest for ${(r.n / base.n).toFixed(0)}× the tensors`,
  );
}
