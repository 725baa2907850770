/** A problem with the user's input (a model file, a plan): reported as one line naming the file. */
export class InputError extends Error {
  constructor(readonly file: string, readonly problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'InputError';
  }
}
