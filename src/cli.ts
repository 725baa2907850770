#!/usr/bin/env node
/**
 * The `layerplan` command line: one engine, the same numbers as the editor. Each command is a module
 * in src/cli/ (its usage, its options, what it does); this file dispatches and turns errors into one
 * line on stderr naming the file, with exit code 2.
 */
import { parseArgs } from 'util';
import { InputError } from './engine/errors';
import { check } from './cli/check';
import { UsageError, out, type Command } from './cli/command';
import { estimate } from './cli/estimate';
import { exportCommand } from './cli/export';
import { importCommand } from './cli/import';
import { inspect } from './cli/inspect';
import { optimizeCommand } from './cli/optimize';
import { quant } from './cli/quant';
import { verify } from './cli/verify';

/** Every command, in the order --help lists them. */
export const COMMANDS: Command[] = [
  inspect,
  estimate,
  quant,
  check,
  verify,
  optimizeCommand,
  exportCommand,
  importCommand,
];

/** Options every command takes. */
const COMMON = { json: { type: 'boolean' }, help: { type: 'boolean' } } as const;

export function usage(): string {
  const lines = COMMANDS.map((c) => `  ${c.usage}`);
  return `usage: layerplan <command> [options]

commands:
${lines.join('\n')}
options:
  --json      print one JSON document on stdout
  --help      this text`;
}

export async function main(argv: string[]): Promise<number> {
  const name = argv[0] ?? '';
  if (!name || name === '--help' || name === 'help' || name === '-h') {
    out(usage() + '\n');
    return name ? 0 : 2;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`layerplan: unknown command '${name}' (try --help)\n`);
    return 2;
  }
  let positional: string[];
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  try {
    ({ positionals: positional, values } = parseArgs({
      args: argv.slice(1),
      options: { ...COMMON, ...command.options },
      allowPositionals: true,
      strict: true,
    }));
  } catch (e) {
    process.stderr.write(
      `layerplan ${name}: ${(e as Error).message.split('\n')[0].split('. To specify')[0]} (try layerplan ${name} --help)\n`,
    );
    return 2;
  }
  if (values.help) {
    out(`usage: layerplan ${command.usage}\n`);
    return 0;
  }
  const file = positional[0];
  try {
    return await command.run(positional, values);
  } catch (e) {
    return reportError(e, name, file);
  }
}

/** Exit code of an internal error: a bug in Layerplan, never the user's input (sysexits' EX_SOFTWARE). */
export const EXIT_INTERNAL = 70;

/** Allocation limits: the input is too large for this machine's memory, not malformed and not a bug. */
const TOO_LARGE = /allocation failed|Invalid (typed )?array length|Invalid string length|Array buffer allocation/i;

/**
 * One line on stderr for a failed command, and its exit code: bad input (InputError, the readers'
 * only way of refusing a file) and usage mistakes exit 2; a file too large to allocate exits 2 and
 * says so; anything else is an internal error, said to be one (exit 70), never passed off as bad input.
 */
export function reportError(e: unknown, command: string, file: string | undefined): number {
  if (e instanceof UsageError) process.stderr.write(`layerplan: ${e.message}\n`);
  else if (e instanceof InputError) process.stderr.write(`${e.message.split('\n')[0]}\n`);
  else if (e instanceof RangeError && TOO_LARGE.test(e.message)) {
    process.stderr.write(`${file ?? 'layerplan'}: too large to read in this process's memory (${e.message})\n`);
  } else {
    const err = e instanceof Error ? e : new Error(String(e));
    const where = process.env.LAYERPLAN_DEBUG
      ? ` ${(err.stack ?? '').split('\n').slice(1, 4).join(' ').replace(/\s+/g, ' ')}`
      : '';
    process.stderr.write(
      `layerplan ${command}: internal error${file ? ` on ${file}` : ''}: ${err.name}: ${err.message.split('\n')[0]} (a bug in Layerplan, not a problem with the input; LAYERPLAN_DEBUG=1 shows where)${where}\n`,
    );
    return EXIT_INTERNAL;
  }
  return 2;
}

/** Runs the command line on `argv` and sets the exit code; dist/cli.js (src/cli-launch.ts) calls it. */
export function runCli(argv: string[] = process.argv.slice(2)): void {
  main(argv).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.exitCode = reportError(e, argv[0] ?? '', undefined);
    },
  );
}

if (require.main === module) runCli();
