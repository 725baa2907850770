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

/** The file is not there (as opposed to there but unreadable): callers for which a file is optional tell the two apart. */
export class MissingFileError extends InputError {
  constructor(file: string, problem: string) {
    super(file, problem);
    this.name = 'MissingFileError';
  }
}
