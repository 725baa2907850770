import { writeSync } from 'fs';
import type { ParseArgsConfig } from 'util';

/** A mistake in how the command line was written (exit 2, with the usage hint). */
export class UsageError extends Error {}

export type OptionValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

/**
 * One `layerplan` command: its usage lines, its options (node:util parseArgs), and what it does.
 * Commands live one per file in src/cli/ and are listed in src/cli.ts; adding one touches no other.
 * `run` loads the modules it needs with require() when it runs: esbuild then initializes them only
 * for the command that uses them, not at every start (all eight commands' modules cost `inspect` ~4 ms).
 */
export interface Command {
  name: string;
  /** Usage text for --help: the first line is `name <args> [options]`, the rest explain. */
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** Returns the exit code: 0 done, 1 the check it ran failed, 2 bad input, 3 see the command (70: an internal error, src/cli.ts). */
  run(positional: string[], values: OptionValues): Promise<number>;
}

// Windows consoles take text through process.stdout (WriteConsoleW), not raw bytes.
let stdoutStream = process.platform === 'win32';
/** The reader went away (EPIPE): the rest of the output goes nowhere, the command still ends with its own exit code. */
let stdoutGone = false;
let listening = false;

function stdout(): NodeJS.WriteStream {
  if (!listening) {
    listening = true;
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') stdoutGone = true;
      else throw e;
    });
  }
  return process.stdout;
}

/**
 * Writes text to stdout: straight to file descriptor 1 while that takes it (a file, a terminal, a
 * blocking pipe), so a command that prints one report never sets up process.stdout (Node's stream
 * machinery costs every start ~2 ms, a pipe's ~4 ms); on a non-blocking pipe (EAGAIN) the rest, and
 * everything after it, goes through process.stdout in order. A reader that stops early
 * (`layerplan … | head`, EPIPE) is not an error: later output is dropped, and the command finishes
 * (its messages on stderr, its exit code) as it would have.
 */
export function out(text: string): void {
  if (stdoutGone) return;
  if (stdoutStream) {
    stdout().write(text);
    return;
  }
  const bytes = Buffer.from(text, 'utf8');
  let done = 0;
  try {
    while (done < bytes.length) done += writeSync(1, bytes, done, bytes.length - done);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EPIPE') {
      stdoutGone = true;
      return;
    }
    if (code !== 'EAGAIN') throw e;
    stdoutStream = true;
    stdout().write(bytes.subarray(done));
  }
}

/** A JSON document on stdout (--json). */
export const json = (value: unknown): void => out(JSON.stringify(value) + '\n');

/** An integer option in [min, max], or undefined when absent. */
export function intOption(values: OptionValues, name: string, min: number, max: number): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new UsageError(`--${name} expects an integer from ${min} to ${max}, got '${String(raw)}'`);
  }
  return v;
}

/** A comma-separated list option. */
export function listOption(values: OptionValues, name: string): string[] | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  return String(raw)
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
}

/** `--dim name=value` (repeatable): symbolic dimension bindings. */
export function dimsOption(values: OptionValues): Record<string, number> {
  const dims: Record<string, number> = {};
  const raw = values.dim;
  for (const spec of Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]) {
    const m = /^([^=]+)=(\d+)$/.exec(String(spec));
    if (!m) throw new UsageError(`--dim expects name=value, got '${String(spec)}'`);
    dims[m[1]] = Number(m[2]);
  }
  return dims;
}

/** The first positional argument, which the command needs. */
export function needFile(positional: string[], command: string, what: string): string {
  if (!positional[0]) throw new UsageError(`${command} needs ${what}`);
  return positional[0];
}
