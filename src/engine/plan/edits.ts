import { applyEdits, modify } from 'jsonc-parser';

/**
 * Edits of a plan as JSON path / value pairs: what quick fixes and the planner send, applied to the plan's
 * text (setJsonPaths, keeping comments and layout) or to the parsed object (setPlanPaths).
 */
export interface PlanEdit {
  path: (string | number)[];
  /** undefined removes the property. */
  value: unknown;
}

/** Sets each path in the plan's text with the smallest edits, keeping its comments and layout. */
export function setJsonPaths(text: string, edits: readonly PlanEdit[]): string {
  for (const e of edits) {
    text = applyEdits(text, modify(text, e.path, e.value, { formattingOptions: { insertSpaces: true, tabSize: 2 } }));
  }
  return text;
}

/** Sets each path in `obj` (creating objects on the way); an undefined value deletes the property. */
export function setPlanPaths(obj: object, edits: readonly PlanEdit[]): void {
  for (const { path, value } of edits) {
    let o = obj as Record<string | number, unknown>;
    for (let i = 0; i < path.length - 1; i++) {
      const k = path[i];
      if (typeof o[k] !== 'object' || o[k] === null) o[k] = {};
      o = o[k] as Record<string | number, unknown>;
    }
    const last = path[path.length - 1];
    if (value === undefined) delete o[last];
    else o[last] = value;
  }
}

/**
 * The planner's edits on their way to the file: each gets a number; a state of the file that says which
 * edit it had taken last (PlanState.editSeq) settles those, and the ones still on their way are laid over it,
 * so a state read before them does not roll the view back. Edits set whole values at paths, so laying one
 * over a state that already holds it changes nothing.
 */
export class PendingEdits {
  private list: { seq: number; edits: PlanEdit[] }[] = [];

  /** Numbered from `start`: the clock by default, so a reloaded view never reuses an earlier view's numbers. */
  constructor(private last = Date.now()) {}

  /** Records an edit as sent; returns its number. */
  add(edits: PlanEdit[]): number {
    this.list.push({ seq: ++this.last, edits });
    return this.last;
  }

  get size(): number {
    return this.list.length;
  }

  /** The plan the view should show for a state of the file: a copy of it with the edits it lacks. */
  settle<T extends object>(plan: T | undefined, editSeq: number): T | undefined {
    this.list = this.list.filter((p) => p.seq > editSeq);
    if (!plan) return undefined;
    const copy = structuredClone(plan);
    for (const p of this.list) setPlanPaths(copy, p.edits);
    return copy;
  }
}
