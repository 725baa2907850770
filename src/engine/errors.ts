/** A problem with the user's input (a model file, a plan): reported as one line naming the file. */
export class InputError extends Error {
  readonly problem: string;
  constructor(
    readonly file: string,
    problem: string,
  ) {
    // One line, always: parser messages (JSON.parse's among them) may quote text with newlines.
    const oneLine = problem.replace(/\s*[\r\n]+\s*/g, ' ');
    super(`${file}: ${oneLine}`);
    this.name = 'InputError';
    this.problem = oneLine;
  }
}
