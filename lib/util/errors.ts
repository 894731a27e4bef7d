/**
 * Errors a user can act on.
 *
 * Every task catches {@link UserError} at the top, prints its one-line message
 * to stderr and exits with a non-zero code; any other error is a bug and keeps
 * its stack trace.
 *
 * @module
 */

/** Bad input: a message naming the file or flag and what was expected. */
export class UserError extends Error {
  /** An error in what the user asked for, shown as one line. */
  constructor(message: string) {
    super(message);
    this.name = "UserError";
  }
}

/** Throws a {@link UserError} unless `cond` holds. */
export function check(cond: unknown, message: string): asserts cond {
  if (!cond) throw new UserError(message);
}
