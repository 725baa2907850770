import type { Workload } from '../cost/workload';
import type { Plan } from '../plan/plan';

/**
 * What `layerplan export <plan> --to <target>` prints (docs/ARCHITECTURE.md): the launch configuration of a
 * framework or runtime for a plan. `command` is one shell string; `files` the configuration files it
 * reads (name → content); `version` the tool version whose options the output was checked against;
 * `notes` what the target cannot express of the plan and what it does instead.
 */
export interface ExportResult {
  to: string;
  version: string;
  command: string;
  files: Record<string, string>;
  notes: string[];
}

/** What a target may use besides the plan: the model's workload, and where the plan and model live. */
export interface ExportContext {
  /** The plan file's path (relative names in `command` are relative to the current directory). */
  planFile: string;
  /** The model path as the plan names it, resolved against the plan's folder (undefined for an architecture object). */
  modelPath?: string;
  /** The model's layers, shapes and parameters (from the model file or the architecture object). */
  workload: Workload;
  /**
   * The model file as the exported files should name it, relative to where they will be written (the
   * launch files record it so that importing them finds the model); default: the plan's own `model`,
   * for files written beside the plan.
   */
  modelRef?: string;
}

/** One export target: a framework (training) or a runtime (inference). One file per target in this folder. */
export interface ExportTarget {
  /** The name `--to` takes: megatron, deepspeed, torchtitan, llama.cpp, vllm, accelerate. */
  name: string;
  /** What it produces, for --help and the editor's picker. */
  description: string;
  /** Training targets export training plans, inference targets inference plans. */
  kind: 'training' | 'inference';
  export(plan: Plan, context: ExportContext): ExportResult;
}
