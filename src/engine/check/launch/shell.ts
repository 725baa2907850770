/**
 * A small, bounded reader for the shell scripts that launch training (Megatron-LM's examples and the
 * like): it finds the commands a script runs and their arguments as bash would expand them, so the
 * flags can be checked and diagnostics point at where each was written.
 *
 * What it understands: comments, line continuations, single / double / $'…' quotes, variables and
 * arrays (`X=1`, `ARGS=( --a 1 )`, `ARGS+=(…)`, `export`, `declare`, `local`), expansions (`$X`, `${X}`,
 * `${X:-default}`, `${X[@]}`, `"${X[@]}"`, `$1`, `$((arithmetic))`), field splitting of unquoted
 * expansions (an array element "--fp8-format hybrid" becomes two arguments, as in bash), `if / elif / else`
 * with `[ … ]`, `[[ … ]]` and `test` conditions on strings and integers, redirections and heredocs (skipped).
 * Command substitutions `$(…)` and conditions on files are not run: their value is unknown (the
 * words are marked) and an unknown condition takes the `else` branch, with a note. Loops, `case` and
 * function bodies are skipped with a note. Every loop here is bounded by the input's length and by LIMITS.
 */

export interface Span {
  start: number;
  end: number;
}

/** A word after expansion: its text and, per character, the offset in the script it came from. */
export interface ShellWord {
  text: string;
  at: number[];
  /** Where the word was written (the use site). */
  span: Span;
  /** Part of it comes from a command substitution or an unset variable with no default. */
  unknown?: boolean;
}

export interface ShellCommand {
  words: ShellWord[];
  /** `VAR=value` words before the command. */
  env: Record<string, string>;
  span: Span;
}

export interface ShellNote {
  severity: 'warning' | 'information';
  message: string;
  span: Span;
}

export interface ShellResult {
  commands: ShellCommand[];
  notes: ShellNote[];
  /** Scalar variables at the end of the script. */
  vars: Map<string, ShellWord>;
  /** Array variables at the end of the script. */
  arrays: Map<string, ShellWord[]>;
}

export const SHELL_LIMITS = { tokens: 200_000, words: 100_000, chars: 4_000_000, depth: 64 };

// ---------------------------------------------------------------- lexer

type Part =
  | { k: 'lit'; text: string; at: number[]; quoted: boolean }
  | { k: 'var'; name: string; index?: string; op?: string; arg?: Part[]; length?: boolean; quoted: boolean; span: Span }
  | { k: 'arith'; expr: Part[]; quoted: boolean; span: Span }
  | { k: 'unknown'; quoted: boolean; span: Span }
  /** A double-quoted "$@" / "${A[@]}" splits into one word per element even inside quotes. */
  | { k: 'dq-start' }
  | { k: 'dq-end' };

type Token =
  | { t: 'word'; parts: Part[]; span: Span }
  | { t: 'op'; op: string; span: Span }
  /** `NAME=(` or `NAME+=(`: an array assignment follows, up to the matching `)`. */
  | { t: 'array'; name: string; append: boolean; span: Span };

const META = new Set([' ', '\t', '\n', ';', '&', '|', '<', '>', '(', ')']);

class Lexer {
  private i = 0;
  readonly tokens: Token[] = [];
  private pendingHeredocs: { delim: string; strip: boolean }[] = [];
  constructor(private readonly s: string) {}

  run(): Token[] {
    const s = this.s;
    while (this.i < s.length) {
      if (this.tokens.length > SHELL_LIMITS.tokens) throw new Error('too many words for a launch script');
      const c = s[this.i];
      if (c === ' ' || c === '\t' || c === '\r') {
        this.i++;
      } else if (c === '\\' && s[this.i + 1] === '\n') {
        this.i += 2;
      } else if (c === '#') {
        while (this.i < s.length && s[this.i] !== '\n') this.i++;
      } else if (c === '\n') {
        this.tokens.push({ t: 'op', op: '\n', span: { start: this.i, end: this.i + 1 } });
        this.i++;
        this.skipHeredocs();
      } else if (META.has(c)) {
        this.operator();
      } else {
        this.word();
      }
    }
    return this.tokens;
  }

  private operator(): void {
    const s = this.s;
    const start = this.i;
    const two = s.slice(this.i, this.i + 2);
    const three = s.slice(this.i, this.i + 3);
    let op: string;
    if (three === '<<-' || two === '<<') {
      op = three === '<<-' ? '<<-' : '<<';
      this.i += op.length;
      // The delimiter word, quotes removed.
      while (s[this.i] === ' ' || s[this.i] === '\t') this.i++;
      let d = '';
      while (this.i < s.length && !META.has(s[this.i])) {
        if (s[this.i] !== '"' && s[this.i] !== "'" && s[this.i] !== '\\') d += s[this.i];
        this.i++;
      }
      if (d) this.pendingHeredocs.push({ delim: d, strip: op === '<<-' });
      this.tokens.push({ t: 'op', op: 'heredoc', span: { start, end: this.i } });
      return;
    }
    if (['&&', '||', ';;', '>>', '&>', '>&', '<&', '2>'].includes(two)) op = two;
    else op = s[this.i];
    this.i += op.length;
    if (op === '>' || op === '<' || op === '>>' || op === '&>' || op === '>&' || op === '<&') {
      // A redirection: its target word is not an argument.
      this.tokens.push({ t: 'op', op: 'redir', span: { start, end: this.i } });
      return;
    }
    this.tokens.push({ t: 'op', op, span: { start, end: this.i } });
  }

  private skipHeredocs(): void {
    const s = this.s;
    while (this.pendingHeredocs.length) {
      const { delim, strip } = this.pendingHeredocs.shift()!;
      while (this.i < s.length) {
        let end = s.indexOf('\n', this.i);
        if (end < 0) end = s.length;
        const line = s.slice(this.i, end);
        this.i = Math.min(s.length, end + 1);
        if ((strip ? line.replace(/^\t+/, '') : line) === delim) break;
      }
    }
  }

  private word(): void {
    const s = this.s;
    const start = this.i;
    // A redirection like 2>&1 starts with a digit directly before > or <.
    if (/[0-9]/.test(s[this.i]) && (s[this.i + 1] === '>' || s[this.i + 1] === '<')) {
      this.i++;
      this.operator();
      return;
    }
    const parts = this.parts((ch) => META.has(ch));
    // NAME=( or NAME+=( : array assignment
    const first = parts[0];
    if (
      parts.length === 1 &&
      first.k === 'lit' &&
      !first.quoted &&
      /^[A-Za-z_][A-Za-z0-9_]*\+?=$/.test(first.text) &&
      s[this.i] === '('
    ) {
      const append = first.text.endsWith('+=');
      this.i++;
      this.tokens.push({
        t: 'array',
        name: first.text.slice(0, append ? -2 : -1),
        append,
        span: { start, end: this.i },
      });
      return;
    }
    this.tokens.push({ t: 'word', parts, span: { start, end: this.i } });
  }

  /** Reads word parts until `stop` says so (outside quotes). */
  private parts(stop: (ch: string) => boolean): Part[] {
    const s = this.s;
    const parts: Part[] = [];
    let lit = '';
    let at: number[] = [];
    const flush = (quoted = false) => {
      if (lit) parts.push({ k: 'lit', text: lit, at, quoted });
      lit = '';
      at = [];
    };
    while (this.i < s.length) {
      const c = s[this.i];
      if (stop(c)) break;
      if (c === '\\') {
        if (s[this.i + 1] === '\n') {
          this.i += 2;
          continue;
        }
        if (this.i + 1 < s.length) {
          lit += s[this.i + 1];
          at.push(this.i + 1);
        }
        this.i += 2;
      } else if (c === "'") {
        flush();
        const end = s.indexOf("'", this.i + 1);
        const stopAt = end < 0 ? s.length : end;
        const text = s.slice(this.i + 1, stopAt);
        parts.push({ k: 'lit', text, at: [...text].map((_, j) => this.i + 1 + j), quoted: true });
        this.i = stopAt + 1;
      } else if (c === '$' && s[this.i + 1] === "'") {
        flush();
        this.i += 2;
        let text = '';
        const ats: number[] = [];
        while (this.i < s.length && s[this.i] !== "'") {
          if (s[this.i] === '\\' && this.i + 1 < s.length) {
            const e = s[this.i + 1];
            text += e === 'n' ? '\n' : e === 't' ? '\t' : e;
            ats.push(this.i);
            this.i += 2;
          } else {
            text += s[this.i];
            ats.push(this.i++);
          }
        }
        this.i++;
        parts.push({ k: 'lit', text, at: ats, quoted: true });
      } else if (c === '"') {
        flush();
        this.i++;
        parts.push({ k: 'dq-start' });
        this.doubleQuoted(parts);
        parts.push({ k: 'dq-end' });
      } else if (c === '$') {
        flush();
        parts.push(this.dollar(false));
      } else if (c === '`') {
        flush();
        const start = this.i;
        const end = s.indexOf('`', this.i + 1);
        this.i = end < 0 ? s.length : end + 1;
        parts.push({ k: 'unknown', quoted: false, span: { start, end: this.i } });
      } else {
        lit += c;
        at.push(this.i++);
      }
    }
    flush();
    return parts;
  }

  private doubleQuoted(parts: Part[]): void {
    const s = this.s;
    let lit = '';
    let at: number[] = [];
    const flush = () => {
      // An empty "" is still a word: keep an empty quoted literal.
      parts.push({ k: 'lit', text: lit, at, quoted: true });
      lit = '';
      at = [];
    };
    while (this.i < s.length && s[this.i] !== '"') {
      const c = s[this.i];
      if (c === '\\' && '$`"\\\n'.includes(s[this.i + 1] ?? '')) {
        if (s[this.i + 1] !== '\n') {
          lit += s[this.i + 1];
          at.push(this.i + 1);
        }
        this.i += 2;
      } else if (c === '$') {
        flush();
        parts.push(this.dollar(true));
      } else if (c === '`') {
        flush();
        const start = this.i;
        const end = s.indexOf('`', this.i + 1);
        this.i = end < 0 ? s.length : end + 1;
        parts.push({ k: 'unknown', quoted: true, span: { start, end: this.i } });
      } else {
        lit += c;
        at.push(this.i++);
      }
    }
    flush();
    this.i++;
  }

  /** `$…` at this.i. */
  private dollar(quoted: boolean): Part {
    const s = this.s;
    const start = this.i;
    if (s.startsWith('$((', this.i)) {
      this.i += 3;
      const expr = this.parts((ch) => ch === ')' && s[this.i + 1] === ')');
      // Nested parentheses inside arithmetic are literal characters here (parts stops only at "))").
      this.i += 2;
      return { k: 'arith', expr, quoted, span: { start, end: this.i } };
    }
    if (s[this.i + 1] === '(') {
      // Command substitution: skip to the matching parenthesis.
      let depth = 0;
      while (this.i < s.length) {
        const ch = s[this.i++];
        if (ch === '(') depth++;
        else if (ch === ')' && --depth === 0) break;
      }
      return { k: 'unknown', quoted, span: { start, end: this.i } };
    }
    if (s[this.i + 1] === '{') {
      this.i += 2;
      let length = false;
      if (s[this.i] === '#' && s[this.i + 1] !== '}') {
        length = true;
        this.i++;
      }
      const m = /^([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])/.exec(s.slice(this.i, this.i + 256));
      const name = m ? m[1] : '';
      this.i += name.length;
      let index: string | undefined;
      if (s[this.i] === '[') {
        const end = s.indexOf(']', this.i);
        index = s.slice(this.i + 1, end < 0 ? s.length : end);
        this.i = end < 0 ? s.length : end + 1;
      }
      let op: string | undefined;
      let arg: Part[] | undefined;
      if (s[this.i] !== '}') {
        const om = /^(:-|:=|:\+|:\?|-|=|\+|\?|%%|%|##|#|\/\/|\/|:|\^\^|\^|,,|,)/.exec(s.slice(this.i, this.i + 3));
        op = om ? om[1] : s[this.i];
        this.i += op.length;
        let depth = 0;
        arg = this.parts((ch) => {
          if (ch === '{') depth++;
          if (ch === '}') return depth-- === 0;
          return false;
        });
      }
      this.i++; // }
      return { k: 'var', name, index, op, arg, length, quoted, span: { start, end: this.i } };
    }
    const m = /^([A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-])/.exec(s.slice(this.i + 1, this.i + 257));
    if (!m) {
      this.i++;
      return { k: 'lit', text: '$', at: [start], quoted };
    }
    this.i += 1 + m[1].length;
    return { k: 'var', name: m[1], quoted, span: { start, end: this.i } };
  }
}

// ---------------------------------------------------------------- expansion and execution

/** Variables the shell itself sets (their values depend on where the script runs): unknown here. */
const SHELL_SET = new Set(['PWD', 'OLDPWD', 'HOME', 'USER', 'HOSTNAME', 'RANDOM', 'SECONDS', 'BASHPID', 'PPID', 'UID']);

interface Field {
  text: string;
  at: number[];
  unknown: boolean;
  /** The field came (partly) from quotes: an empty one still counts as a word. */
  quoted: boolean;
}

class Shell {
  readonly vars = new Map<string, ShellWord>();
  readonly arrays = new Map<string, ShellWord[]>();
  readonly commands: ShellCommand[] = [];
  readonly notes: ShellNote[] = [];
  private chars = 0;
  private pos = 0;

  constructor(
    private readonly tokens: Token[],
    env: Record<string, string>,
  ) {
    for (const [k, v] of Object.entries(env)) {
      this.vars.set(k, { text: v, at: [...v].map(() => -1), span: { start: 0, end: 0 } });
    }
  }

  private budget(n: number): void {
    this.chars += n;
    if (this.chars > SHELL_LIMITS.chars) throw new Error('the script expands to too much text');
  }

  /** A variable's value as fields (an array's elements, a scalar as one). Undefined when unset. */
  private lookup(name: string, index?: string): ShellWord[] | undefined {
    const arr = this.arrays.get(name);
    if (arr) {
      if (index === '@' || index === '*') return arr;
      const n = index === undefined ? 0 : Number(index);
      return Number.isInteger(n) && arr[n] ? [arr[n]] : undefined;
    }
    const v = this.vars.get(name);
    if (!v) return undefined;
    return index === undefined || index === '0' || index === '@' || index === '*' ? [v] : undefined;
  }

  /** Expands parts into fields: unquoted expansions are split on blanks, quoted ones are not. */
  expand(parts: Part[], split: boolean): Field[] {
    const fields: Field[] = [];
    let cur: Field | undefined;
    const open = () => (cur ??= { text: '', at: [], unknown: false, quoted: false });
    const append = (text: string, at: number[], unknown = false, quoted = false) => {
      this.budget(text.length);
      const f = open();
      f.text += text;
      f.at.push(...at);
      f.unknown ||= unknown;
      f.quoted ||= quoted;
    };
    const end = () => {
      if (cur && (cur.text || cur.quoted || cur.unknown)) fields.push(cur);
      cur = undefined;
    };
    const appendSplit = (text: string, at: number[], unknown: boolean) => {
      // Field splitting on the default IFS (space, tab, newline).
      let i = 0;
      while (i < text.length) {
        if (/[ \t\n]/.test(text[i])) {
          end();
          while (i < text.length && /[ \t\n]/.test(text[i])) i++;
          continue;
        }
        let j = i;
        while (j < text.length && !/[ \t\n]/.test(text[j])) j++;
        append(text.slice(i, j), at.slice(i, j), unknown);
        i = j;
      }
    };
    let inQuotes = false;
    for (const p of parts) {
      if (p.k === 'dq-start') {
        inQuotes = true;
        open().quoted = true;
        continue;
      }
      if (p.k === 'dq-end') {
        inQuotes = false;
        continue;
      }
      if (p.k === 'lit') {
        append(p.text, p.at, false, p.quoted);
        continue;
      }
      if (p.k === 'unknown') {
        append('', [], true);
        continue;
      }
      if (p.k === 'arith') {
        const expr = this.expand(p.expr, false)
          .map((f) => f.text)
          .join(' ');
        const v = arithmetic(expr, (name) => this.lookup(name)?.[0]?.text);
        const text = v === undefined ? '' : String(v);
        append(
          text,
          [...text].map(() => p.span.start),
          v === undefined,
        );
        continue;
      }
      // A variable. Positional parameters ($1, $@) are the script's own arguments: unknown here.
      const positional = /^([1-9][0-9]*|[@*?$!-])$/.test(p.name) || SHELL_SET.has(p.name);
      let values = positional ? undefined : p.name === '#' ? [] : this.lookup(p.name, p.index);
      let unknown = false;
      const set = values !== undefined && (values.length === 0 || values.some((v) => v.text !== '' || v.unknown));
      if (p.op === ':-' || p.op === '-') {
        if (p.op === ':-' ? !set : values === undefined) values = this.wordsOf(this.expand(p.arg ?? [], false));
      } else if (p.op === ':=' || p.op === '=') {
        if (p.op === ':=' ? !set : values === undefined) {
          values = this.wordsOf(this.expand(p.arg ?? [], false));
          if (values[0]) this.vars.set(p.name, values[0]);
        }
      } else if (p.op === ':+' || p.op === '+') {
        values = (p.op === ':+' ? set : values !== undefined) ? this.wordsOf(this.expand(p.arg ?? [], false)) : [];
      } else if (p.op) {
        // Pattern removal, substitution, case changes, substrings, errors: not evaluated.
        unknown = true;
      }
      if (p.length) {
        const n = p.index === '@' || p.index === '*' ? (values?.length ?? 0) : (values?.[0]?.text.length ?? 0);
        values = [{ text: String(n), at: [...String(n)].map(() => p.span.start), span: p.span }];
      }
      if (values === undefined) {
        // Unset: empty, as bash expands it (the environment is assumed empty); a positional parameter is unknown.
        values = positional ? [{ text: '', at: [], span: p.span, unknown: true }] : [];
      }
      const many = p.index === '@' || p.index === '*' || p.name === '@' || p.name === '*';
      if (inQuotes || p.quoted) {
        if (many && (p.index === '@' || p.name === '@')) {
          // "${A[@]}": one word per element.
          values.forEach((v, k) => {
            if (k > 0) {
              end();
              open().quoted = true;
            }
            append(v.text, v.at, unknown || !!v.unknown, true);
          });
          if (!values.length) append('', [], unknown, true);
        } else {
          const joined = joinWords(values, ' ');
          append(joined.text, joined.at, unknown || values.some((v) => v.unknown), true);
        }
      } else if (split) {
        for (const v of values) {
          if (!v.text && (v.unknown || unknown)) append('', [], true);
          else appendSplit(v.text, v.at, unknown || !!v.unknown);
          if (many) end();
        }
        if (unknown && !values.length) append('', [], true);
      } else {
        const joined = joinWords(values, ' ');
        append(joined.text, joined.at, unknown || values.some((v) => v.unknown));
      }
    }
    end();
    return fields;
  }

  private wordsOf(fields: Field[]): ShellWord[] {
    return fields.map((f) => ({ text: f.text, at: f.at, span: spanOf(f.at), unknown: f.unknown || undefined }));
  }

  private word(tok: { parts: Part[]; span: Span }, split: boolean): ShellWord[] {
    return this.expand(tok.parts, split).map((f) => ({
      text: f.text,
      at: f.at,
      span: tok.span,
      unknown: f.unknown || undefined,
    }));
  }

  // ---- statements

  run(): void {
    this.list(new Set(), 0);
  }

  private peek(): Token | undefined {
    return this.tokens[this.pos];
  }

  private isWord(t: Token | undefined, text: string): boolean {
    return !!t && t.t === 'word' && t.parts.length === 1 && t.parts[0].k === 'lit' && t.parts[0].text === text;
  }

  private skipSeparators(): void {
    const separators = [';', '\n', '&', '&&', '||', '|', ';;'];
    for (let t = this.peek(); t && t.t === 'op' && separators.includes(t.op); t = this.peek()) this.pos++;
  }

  /** Runs statements until one of `stops` (reserved words) starts a statement; returns that word. */
  private list(stops: Set<string>, depth: number, execute = true): string | undefined {
    if (depth > SHELL_LIMITS.depth) throw new Error('the script nests too deeply');
    for (;;) {
      this.skipSeparators();
      const t = this.peek();
      if (!t) return undefined;
      if (t.t === 'word' && t.parts.length === 1 && t.parts[0].k === 'lit' && stops.has(t.parts[0].text)) {
        this.pos++;
        return t.parts[0].text;
      }
      this.statement(depth, execute);
    }
  }

  private statement(depth: number, execute: boolean): void {
    const t = this.peek()!;
    if (this.isWord(t, 'if')) {
      this.pos++;
      this.ifStatement(depth, execute);
      return;
    }
    for (const [open, close] of [
      ['for', 'done'],
      ['while', 'done'],
      ['until', 'done'],
      ['case', 'esac'],
    ]) {
      if (this.isWord(t, open)) {
        this.pos++;
        if (execute) {
          this.notes.push({
            severity: 'information',
            message: `this '${open}' block is not evaluated by Layerplan; the launch command is read as if it did not run`,
            span: t.span,
          });
        }
        this.skipBlock(open, close);
        return;
      }
    }
    // Function definitions: name() { … } or function name { … }
    const next = this.tokens[this.pos + 1];
    if (
      (this.isWord(t, 'function') && this.tokens[this.pos + 1]?.t === 'word') ||
      (t.t === 'word' && next?.t === 'op' && next.op === '(' && this.tokens[this.pos + 2]?.t === 'op')
    ) {
      this.skipFunction();
      return;
    }
    if (t.t === 'op') {
      // A subshell's parentheses, a stray operator: step over it.
      this.pos++;
      return;
    }
    this.pipeline(execute);
  }

  private skipBlock(open: string, close: string): void {
    let depth = 1;
    while (this.pos < this.tokens.length && depth > 0) {
      const t = this.tokens[this.pos++];
      if (this.isWord(t, open)) depth++;
      else if (this.isWord(t, close)) depth--;
    }
  }

  private skipFunction(): void {
    while (this.pos < this.tokens.length && !this.isWord(this.tokens[this.pos], '{')) this.pos++;
    this.pos++;
    let depth = 1;
    while (this.pos < this.tokens.length && depth > 0) {
      const t = this.tokens[this.pos++];
      if (this.isWord(t, '{')) depth++;
      else if (this.isWord(t, '}')) depth--;
    }
  }

  private ifStatement(depth: number, execute: boolean): void {
    let taken = false;
    for (;;) {
      // The condition: commands up to `then`.
      const condStart = this.pos;
      while (this.pos < this.tokens.length && !this.isWord(this.tokens[this.pos], 'then')) this.pos++;
      const cond = this.tokens.slice(condStart, this.pos);
      this.pos++; // then
      let value: boolean | undefined = false;
      if (execute && !taken) {
        value = this.condition(cond);
        if (value === undefined) {
          const first = cond.find((c) => c.t === 'word');
          this.notes.push({
            severity: 'information',
            message: 'Layerplan cannot evaluate this condition; it reads the script as if it were false',
            span: first ? { start: first.span.start, end: cond[cond.length - 1].span.end } : { start: 0, end: 0 },
          });
          value = false;
        }
      }
      const run = execute && !taken && value;
      const stop = this.list(new Set(['elif', 'else', 'fi']), depth + 1, run);
      if (run) taken = true;
      if (stop === 'elif') continue;
      if (stop === 'else') {
        this.list(new Set(['fi']), depth + 1, execute && !taken);
      }
      return;
    }
  }

  /** A condition list: commands joined by && / ||; undefined when any part cannot be evaluated. */
  private condition(tokens: Token[]): boolean | undefined {
    const groups: { words: Token[]; op?: string }[] = [{ words: [] }];
    for (const t of tokens) {
      if (t.t === 'op' && (t.op === '&&' || t.op === '||')) groups.push({ words: [], op: t.op });
      else if (t.t === 'op' && (t.op === ';' || t.op === '\n')) continue;
      else groups[groups.length - 1].words.push(t);
    }
    let result: boolean | undefined;
    groups.forEach((g, i) => {
      const v = this.test(g.words);
      if (i === 0) result = v;
      else if (g.op === '&&') result = result === false || v === false ? false : result && v;
      else result = result === true || v === true ? true : result === undefined || v === undefined ? undefined : false;
    });
    return result;
  }

  /** One `[ … ]`, `[[ … ]]`, `test …`, `true` or `false`. */
  private test(tokens: Token[]): boolean | undefined {
    const words: string[] = [];
    for (const t of tokens) {
      if (t.t !== 'word') return undefined;
      const fields = this.expand(t.parts, false);
      if (fields.some((f) => f.unknown)) return undefined;
      words.push(fields.map((f) => f.text).join(' '));
    }
    let negate = false;
    if (words[0] === '!') {
      negate = true;
      words.shift();
    }
    if (words[0] === 'true' && words.length === 1) return !negate;
    if (words[0] === 'false' && words.length === 1) return negate;
    let inner: string[];
    if (words[0] === '[' && words[words.length - 1] === ']') inner = words.slice(1, -1);
    else if (words[0] === '[[' && words[words.length - 1] === ']]') inner = words.slice(1, -1);
    else if (words[0] === 'test') inner = words.slice(1);
    else return undefined;
    const v = testExpression(inner);
    return v === undefined ? undefined : v !== negate;
  }

  /** Commands joined by | && || ; each simple command is recorded (and assignments applied). */
  private pipeline(execute: boolean): void {
    const words: Token[] = [];
    const start = this.peek()!.span.start;
    let end = start;
    while (this.pos < this.tokens.length) {
      const t = this.tokens[this.pos];
      if (t.t === 'op' && ['\n', ';', '&', '&&', '||', '|', ';;'].includes(t.op)) break;
      if (t.t === 'op' && t.op === ')') break;
      this.pos++;
      end = t.span.end;
      if (t.t === 'op' && t.op === 'redir') {
        // The redirection's target word.
        if (this.tokens[this.pos]?.t === 'word') this.pos++;
        continue;
      }
      if (t.t === 'array') {
        const elements: Token[] = [];
        while (this.pos < this.tokens.length) {
          const e = this.tokens[this.pos++];
          if (e.t === 'op' && e.op === ')') break;
          if (e.t === 'word') elements.push(e);
        }
        if (execute) {
          const values = elements.flatMap((e) => this.word(e as { parts: Part[]; span: Span }, true));
          if (values.length > SHELL_LIMITS.words) throw new Error('an array of too many words');
          const old = t.append
            ? (this.arrays.get(t.name) ?? (this.vars.has(t.name) ? [this.vars.get(t.name)!] : []))
            : [];
          this.arrays.set(t.name, [...old, ...values]);
          this.vars.delete(t.name);
        }
        continue;
      }
      if (t.t === 'op') continue;
      words.push(t);
    }
    if (!execute || !words.length) return;
    // Leading NAME=value words are assignments (or the command's environment).
    const assigns: { name: string; append: boolean; value: ShellWord }[] = [];
    let k = 0;
    for (; k < words.length; k++) {
      const w = words[k] as Extract<Token, { t: 'word' }>;
      const a = this.assignment(w);
      if (!a) break;
      assigns.push(a);
    }
    let rest = words.slice(k) as Extract<Token, { t: 'word' }>[];
    // export / declare / local / readonly / typeset: their NAME=value arguments are assignments.
    const head = rest[0];
    if (head && ['export', 'declare', 'local', 'readonly', 'typeset'].some((w) => this.isWord(head, w))) {
      for (const w of rest.slice(1)) {
        const a = this.assignment(w);
        if (a) assigns.push(a);
      }
      rest = [];
    }
    if (!rest.length) {
      for (const a of assigns) this.assign(a);
      return;
    }
    const argv = rest.flatMap((w) => this.word(w, true));
    if (argv.length > SHELL_LIMITS.words) throw new Error('a command of too many words');
    const env: Record<string, string> = {};
    for (const a of assigns) env[a.name] = a.value.text;
    this.commands.push({ words: argv, env, span: { start, end } });
  }

  private assignment(w: Token): { name: string; append: boolean; value: ShellWord } | undefined {
    if (w.t !== 'word') return undefined;
    const first = w.parts[0];
    if (!first || first.k !== 'lit' || first.quoted) return undefined;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(\+?)=/.exec(first.text);
    if (!m) return undefined;
    const restLit = { ...first, text: first.text.slice(m[0].length), at: first.at.slice(m[0].length) };
    const fields = this.expand([restLit, ...w.parts.slice(1)], false);
    const joined = joinWords(
      fields.map((f) => ({ text: f.text, at: f.at, span: w.span, unknown: f.unknown || undefined })),
      ' ',
    );
    const valueSpan = { start: w.span.start + m[0].length, end: w.span.end };
    return {
      name: m[1],
      append: m[2] === '+',
      value: { text: joined.text, at: joined.at, span: valueSpan, unknown: fields.some((f) => f.unknown) || undefined },
    };
  }

  private assign(a: { name: string; append: boolean; value: ShellWord }): void {
    const arr = this.arrays.get(a.name);
    if (arr && a.append) {
      arr.push(a.value);
      return;
    }
    if (arr) {
      arr[0] = a.value;
      return;
    }
    const old = a.append ? this.vars.get(a.name) : undefined;
    this.vars.set(
      a.name,
      old ? { ...a.value, text: old.text + a.value.text, at: [...old.at, ...a.value.at] } : a.value,
    );
  }
}

function joinWords(words: ShellWord[], sep: string): { text: string; at: number[] } {
  let text = '';
  const at: number[] = [];
  words.forEach((w, i) => {
    if (i) {
      text += sep;
      at.push(-1);
    }
    text += w.text;
    at.push(...w.at);
  });
  return { text, at };
}

function spanOf(at: number[]): Span {
  const known = at.filter((a) => a >= 0);
  if (!known.length) return { start: 0, end: 0 };
  return { start: Math.min(...known), end: Math.max(...known) + 1 };
}

/** `[ … ]` expressions on strings and integers; undefined for file tests and anything else. */
function testExpression(w: string[]): boolean | undefined {
  const orAt = w.findIndex((x) => x === '-o' || x === '||');
  if (orAt > 0) {
    const a = testExpression(w.slice(0, orAt));
    const b = testExpression(w.slice(orAt + 1));
    return a === true || b === true ? true : a === undefined || b === undefined ? undefined : false;
  }
  const andAt = w.findIndex((x) => x === '-a' || x === '&&');
  if (andAt > 0) {
    const a = testExpression(w.slice(0, andAt));
    const b = testExpression(w.slice(andAt + 1));
    return a === false || b === false ? false : a === undefined || b === undefined ? undefined : true;
  }
  if (w[0] === '!') {
    const v = testExpression(w.slice(1));
    return v === undefined ? undefined : !v;
  }
  if (w.length === 1) return w[0] !== '';
  if (w.length === 2) {
    if (w[0] === '-n') return w[1] !== '';
    if (w[0] === '-z') return w[1] === '';
    return undefined;
  }
  if (w.length === 3) {
    const [a, op, b] = w;
    if (op === '=' || op === '==') return b.includes('*') ? globToRegExp(b).test(a) : a === b;
    if (op === '!=') return b.includes('*') ? !globToRegExp(b).test(a) : a !== b;
    const x = Number(a);
    const y = Number(b);
    if (!Number.isInteger(x) || !Number.isInteger(y)) return undefined;
    switch (op) {
      case '-eq':
        return x === y;
      case '-ne':
        return x !== y;
      case '-gt':
        return x > y;
      case '-ge':
        return x >= y;
      case '-lt':
        return x < y;
      case '-le':
        return x <= y;
    }
  }
  return undefined;
}

function globToRegExp(glob: string): RegExp {
  return new RegExp(
    '^' +
      glob
        .slice(0, 256)
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.') +
      '$',
  );
}

/** Integer arithmetic of $(( … )): + - * / % and parentheses over numbers and variable names. */
export function arithmetic(expr: string, variable: (name: string) => string | undefined): number | undefined {
  const tokens = expr.match(/\$?[A-Za-z_][A-Za-z0-9_]*|\d+|\*\*|[-+*/%()]/g) ?? [];
  if (tokens.join('').replace(/\$/g, '') !== expr.replace(/[\s$]/g, '')) return undefined;
  let i = 0;
  let depth = 0;
  const atom = (): number | undefined => {
    const t = tokens[i++];
    if (t === undefined) return undefined;
    if (t === '(') {
      if (++depth > 64) return undefined;
      const v = sum();
      depth--;
      return tokens[i++] === ')' ? v : undefined;
    }
    if (t === '-') {
      const v = atom();
      return v === undefined ? undefined : -v;
    }
    if (t === '+') return atom();
    if (/^\d+$/.test(t)) return Number(t);
    const raw = variable(t.replace(/^\$/, ''));
    if (raw === undefined || raw === '') return raw === '' ? 0 : undefined;
    const n = Number(raw);
    return Number.isInteger(n) ? n : undefined;
  };
  const product = (): number | undefined => {
    let v = atom();
    while (v !== undefined && ['*', '/', '%'].includes(tokens[i])) {
      const op = tokens[i++];
      const w = atom();
      if (w === undefined || ((op === '/' || op === '%') && w === 0)) return undefined;
      v = op === '*' ? v * w : op === '/' ? Math.trunc(v / w) : v % w;
    }
    return v;
  };
  const sum = (): number | undefined => {
    let v = product();
    while (v !== undefined && (tokens[i] === '+' || tokens[i] === '-')) {
      const op = tokens[i++];
      const w = product();
      if (w === undefined) return undefined;
      v = op === '+' ? v + w : v - w;
    }
    return v;
  };
  const v = sum();
  return i === tokens.length && v !== undefined && Number.isSafeInteger(v) ? v : undefined;
}

/**
 * Reads a script: every simple command it would run (with its words expanded as bash expands them)
 * and what it could not evaluate. `env` gives variables the script reads from its environment.
 */
export function runShell(text: string, env: Record<string, string> = {}): ShellResult {
  const tokens = new Lexer(text).run();
  const sh = new Shell(tokens, env);
  sh.run();
  return { commands: sh.commands, notes: sh.notes, vars: sh.vars, arrays: sh.arrays };
}
