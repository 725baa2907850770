import type { CostReport } from '../cost/estimate';
import { formatBytes, formatCount, formatSeconds as seconds, GiB } from '../units';

/** A stacked bar: weights █, gradients ▓, optimizer ▒, activations ░, free ·, over capacity ! */
function memoryBar(r: CostReport['stages'][number], width: number): string {
  const scale = width / Math.max(r.capacity, r.memory.total);
  const seg = (bytes: number, ch: string) => ch.repeat(Math.round(bytes * scale));
  let bar =
    seg(r.memory.weights, '█') +
    seg(r.memory.gradients, '▓') +
    seg(r.memory.optimizer, '▒') +
    seg(r.memory.activations, '░');
  const cap = Math.round(r.capacity * scale);
  if (bar.length < cap) bar += '·'.repeat(cap - bar.length);
  else if (bar.length > cap) bar = bar.slice(0, cap) + '!'.repeat(bar.length - cap);
  return bar;
}

/** A device's bar: weights █, KV cache ▓, compute ▒, free ·, over capacity ! */
function deviceBar(d: NonNullable<CostReport['devices']>[number], width: number): string {
  const cap = d.capacity ?? d.memory.total;
  const scale = width / Math.max(cap, d.memory.total, 1);
  const seg = (bytes: number, ch: string) => ch.repeat(Math.round(bytes * scale));
  let bar = seg(d.memory.weights, '█') + seg(d.memory.kvCache, '▓') + seg(d.memory.compute, '▒');
  const c = Math.round(cap * scale);
  if (bar.length < c) bar += '·'.repeat(c - bar.length);
  else if (bar.length > c) bar = bar.slice(0, c) + '!'.repeat(bar.length - c);
  return bar;
}

/** An inference plan on its devices: speed, then memory per device. */
function formatDevices(file: string, r: CostReport): string {
  const rt = r.runtime!;
  const devices = r.devices!;
  const lines: string[] = [];
  const model = rt.fileType
    ? `, ${rt.fileType} (${(rt.modelBytes / GiB).toFixed(2)} GiB)`
    : `, ${(rt.modelBytes / GiB).toFixed(2)} GiB of weights`;
  lines.push(
    `${file}: inference with ${rt.runtime} ${rt.version} on ${devices.map((d) => d.name).join(' + ')}, ${formatCount(r.parameters)} parameters${model}`,
  );
  const placement =
    rt.placement === 'runtime'
      ? ''
      : `   placement: ${rt.placement}${rt.gpuLayers !== undefined ? ` (-ngl ${rt.gpuLayers}${rt.tensorSplit ? ` -ts ${rt.tensorSplit.join(',')}` : ''})` : ''}`;
  lines.push(
    `  prefill ${seconds(r.prefillSeconds!)}   decode ${r.decodeTokensPerSecond!.toFixed(1)} tokens/s (${seconds(rt.decodeStepSeconds)} per step)   context ${rt.contextCells} tokens${placement}`,
  );
  lines.push('', 'Memory per device   (█ weights ▓ KV cache ▒ compute · free)');
  const name = Math.max(...devices.map((d) => d.name.length));
  for (const d of devices) {
    const m = d.memory;
    const cap = d.capacity;
    const over = cap !== null && m.total > cap ? `  OVER by ${((m.total - cap) / GiB).toFixed(2)} GiB` : '';
    const layers = `layers ${d.layers || '-'}${d.output ? ' +out' : ''}`;
    lines.push(
      `  ${d.name.padEnd(name)} ${layers.padEnd(18)} ${deviceBar(d, 40)} ${(m.total / GiB).toFixed(2).padStart(6)} / ${cap === null ? '  ?  ' : (cap / GiB).toFixed(1)} GiB` +
        `  (w ${(m.weights / GiB).toFixed(2)}, kv ${(m.kvCache / GiB).toFixed(2)}, c ${(m.compute / GiB).toFixed(2)})${over}`,
    );
  }
  for (const n of rt.notes) lines.push(`note: ${n}`);
  for (const p of rt.problems) lines.push(`${p.severity}: ${p.message}`);
  if (rt.fix) lines.push(`quick fix: ${rt.fix.title}`);
  for (const s of rt.suggestions) lines.push(`suggestion: ${s.title}`);
  return lines.join('\n') + '\n';
}

/** The terminal report of `layerplan estimate`. */
export function formatEstimate(file: string, r: CostReport): string {
  if (r.runtime && r.devices) return formatDevices(file, r);
  const lines: string[] = [];
  lines.push(`${file}: ${r.mode} on ${r.gpus} × ${r.gpu}, ${formatCount(r.parameters)} parameters`);
  if (r.mode === 'training') {
    lines.push(
      `  iteration ${seconds(r.iterationSeconds)}   ${r.tflopsPerGpu.toFixed(1)} TFLOP/s per GPU   MFU ${(r.mfu * 100).toFixed(1)}%   pipeline bubble ${(r.bubbleFraction * 100).toFixed(1)}%   ${r.microBatches} micro-batches per pipeline`,
    );
    if (r.hfu !== undefined) {
      // Named as the papers name them: MFU counts the model's FLOPs (Chowdhery et al. 2022), HFU the
      // FLOPs the GPUs execute, recomputation included (Korthikanti et al. 2022; Megatron-LM's TFLOP/s).
      lines.push(
        `  MFU ${(r.mfu * 100).toFixed(1)}% (model FLOPs, ${(r.modelTflopsPerGpu ?? 0).toFixed(1)} TFLOP/s per GPU) · HFU ${(r.hfu * 100).toFixed(1)}% (hardware FLOPs with recomputation, ${r.tflopsPerGpu.toFixed(1)} TFLOP/s per GPU) of the ${(r.peakTflops ?? 0).toFixed(0)} TFLOP/s dense peak; software profile ${r.framework}`,
      );
    }
  } else if (r.inference) {
    const i = r.inference;
    lines.push(
      `  request batch ${seconds(r.iterationSeconds)}: prefill ${seconds(i.prefillSeconds)}, decode ${seconds(i.decodeSecondsPerToken)} per token, ${i.tokensPerSecond.toFixed(0)} tokens/s, KV cache ${(i.kvCacheBytes / GiB).toFixed(2)} GiB`,
    );
  }
  lines.push('', 'Memory per GPU   (█ weights ▓ gradients ▒ optimizer ░ activations · free)');
  const width = 40;
  for (const s of r.stages) {
    const m = s.memory;
    const fits = m.total <= s.capacity ? '' : `  OVER by ${((m.total - s.capacity) / GiB).toFixed(1)} GiB`;
    lines.push(
      `  stage ${String(s.index).padStart(2)} ${`layers ${s.layers || '-'}`.padEnd(16)} ${memoryBar(s, width)} ${(m.total / GiB).toFixed(1).padStart(6)} / ${(s.capacity / GiB).toFixed(1)} GiB` +
        `  (w ${(m.weights / GiB).toFixed(1)}, g ${(m.gradients / GiB).toFixed(1)}, o ${(m.optimizer / GiB).toFixed(1)}, a ${(m.activations / GiB).toFixed(1)})${fits}`,
    );
  }
  if (r.mode === 'training') {
    lines.push('', 'Time per stage (one iteration)');
    lines.push('  stage   compute      comm         idle');
    for (const s of r.stages) {
      lines.push(
        `  ${String(s.index).padStart(5)}   ${seconds(s.computeSeconds).padEnd(11)}  ${seconds(s.commSeconds).padEnd(11)}  ${seconds(s.idleSeconds)}`,
      );
    }
  }
  const c = r.communication;
  lines.push('', 'Communication per iteration (per GPU)');
  const via = (x: { link?: string }) => (x.link && x.link !== 'none' ? `  over ${x.link}` : '');
  lines.push(
    `  tensor parallel  ${formatBytes(c.tensor.bytes).padStart(8)}  ${seconds(c.tensor.seconds).padEnd(11)}${via(c.tensor)}`,
  );
  lines.push(
    `  pipeline         ${formatBytes(c.pipeline.bytes).padStart(8)}  ${seconds(c.pipeline.seconds).padEnd(11)}${via(c.pipeline)}`,
  );
  lines.push(
    `  data parallel    ${formatBytes(c.data.bytes).padStart(8)}  ${seconds(c.data.seconds).padEnd(11)}${via(c.data)} (exposed)`,
  );
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n') + '\n';
}
