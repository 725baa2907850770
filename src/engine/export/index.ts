import { InputError } from '../errors';
import type { Plan } from '../plan/plan';
import { accelerateTarget } from './accelerate';
import { llamaCppTarget } from './llamacpp';
import type { ExportContext, ExportResult, ExportTarget } from './target';
import { deepspeed } from './deepspeed';
import { megatron } from './megatron';
import { torchtitan } from './torchtitan';
import { vllmTarget } from './vllm';

export type { ExportContext, ExportResult, ExportTarget } from './target';

/**
 * Every export target. A target is one file in this folder implementing ExportTarget; list it here.
 * (Training: megatron, deepspeed, torchtitan. Inference: llama.cpp, vllm, accelerate.)
 */
export const EXPORT_TARGETS: ExportTarget[] = [
  megatron,
  deepspeed,
  torchtitan,
  llamaCppTarget,
  vllmTarget,
  accelerateTarget,
];

export function findTarget(name: string): ExportTarget | undefined {
  return EXPORT_TARGETS.find((t) => t.name === name.toLowerCase());
}

/** Exports a validated plan to a target; a plan of the wrong kind or an unknown target is an InputError. */
export function exportPlan(plan: Plan, to: string, context: ExportContext): ExportResult {
  const target = findTarget(to);
  const known = EXPORT_TARGETS.map((t) => t.name).join(', ') || 'none yet';
  if (!target) throw new InputError(context.planFile, `unknown export target '${to}' (known: ${known})`);
  const kind = plan.training ? 'training' : 'inference';
  if (target.kind !== kind) {
    throw new InputError(context.planFile, `${target.name} runs ${target.kind} plans; this plan is a ${kind} plan`);
  }
  return target.export(plan, context);
}
