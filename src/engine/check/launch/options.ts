/**
 * The shapes of the frameworks' option tables (options.generated.ts, generated from the option lists in
 * test/fixtures/frameworks/ by scripts/gen-framework-options.cjs) and lookups over them.
 */
import { closest } from '../../hardware/catalog';
import { frameworkOptions } from './options.generated';

/**
 * A Megatron-LM flag: [value kind, choices, nargs, dest, default] for a flag that takes a value;
 * ['flag', null, null, dest, the value it sets, default] for store_true / store_false / --x / --no-x.
 */
export type MegatronFlag = [
  kind: 'flag' | 'int' | 'float' | 'str' | 'any',
  choices: (string | number)[] | null,
  nargs: string | null,
  dest: string,
  a: unknown,
  b?: unknown,
];

/** A DeepSpeed config key: its kind, choices, bounds, default, and its fields when it is a section. */
export interface DeepSpeedField {
  k: 'int' | 'number' | 'bool' | 'str' | 'enum' | 'object' | 'any';
  c?: (string | number)[];
  ge?: number;
  le?: number;
  d?: unknown;
  auto?: boolean;
  deprecated?: string | boolean;
  aliasOf?: string;
  fields?: Record<string, DeepSpeedField>;
}

/** A torchtitan JobConfig field: [kind, choices, default]; 'table' for a nested table. */
export type TorchtitanField = [
  kind: 'int' | 'number' | 'bool' | 'str' | 'enum' | 'strings' | 'strings|str' | 'stringLists' | 'table' | 'any',
  choices: string[] | null,
  d: unknown,
];

let byDestMap: Map<string, string> | undefined;

/** Megatron flags by dest (the first spelling of each), for reading values and defaults; made on first use. */
function byDest(): Map<string, string> {
  if (byDestMap) return byDestMap;
  byDestMap = new Map();
  for (const [flag, spec] of Object.entries(frameworkOptions().MEGATRON_FLAGS)) {
    if (!byDestMap.has(spec[3]) && !(spec[0] === 'flag' && spec[4] === false && /^--(disable|no)-/.test(flag))) {
      byDestMap.set(spec[3], flag);
    }
  }
  return byDestMap;
}

/** The default Megatron gives a dest when no flag sets it (argparse's default, before validate_args). */
export function megatronDefault(dest: string): unknown {
  const flags = frameworkOptions().MEGATRON_FLAGS;
  const flag = byDest().get(dest) ?? Object.entries(flags).find(([, s]) => s[3] === dest)?.[0];
  if (!flag) return undefined;
  const s = flags[flag];
  return (s[0] === 'flag' ? s[5] : s[4]) ?? undefined;
}

/** The closest known spelling (for "did you mean"), or undefined. */
export function suggest(name: string, known: Iterable<string>): string | undefined {
  return closest(name, [...known]);
}
