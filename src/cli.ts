#!/usr/bin/env node
/**
 * The `layerplan` command line: one engine, the same numbers as the editor. Each command is a module
 * in src/cli/ (its usage, its options, what it does); this file dispatches and turns errors into one
 * line on stderr naming the file, with exit code 2.
 */
import { parseArgs } from 'util';
import { InputError } from './engine/errors';
import { check } from './cli/check';
import { UsageError, type Command } from './cli/command';
import { estimate } from './cli/estimate';
import { exportCommand } from './cli/export';
import { inspect } from './cli/inspect';
import { quant } from './cli/quant';
import { verify } from './cli/verify';

/** Every command, in the order --help lists them. */
export const COMMANDS: Command[] = [inspect, estimate, quant, check, verify, exportCommand];

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
    process.stdout.write(usage() + '\n');
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
    process.stdout.write(`usage: layerplan ${command.usage}\n`);
    return 0;
  }
  const file = positional[0];
  try {
    return await command.run(positional, values);
  } catch (e) {
    if (e instanceof UsageError) process.stderr.write(`layerplan: ${e.message}\n`);
    else if (e instanceof InputError) process.stderr.write(`${e.message.split('\n')[0]}\n`);
    else if (e instanceof RangeError) process.stderr.write(`${file}: too large or malformed to read (${e.message})\n`);
    else process.stderr.write(`${file ?? 'layerplan'}: ${(e as Error).message ?? String(e)}\n`);
    return 2;
  }
}

if (require.main === module) {
  // `layerplan … | head`: a reader that stops early is not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
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
