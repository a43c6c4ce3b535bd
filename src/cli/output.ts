import { EXIT_CODES, isEcrxError } from "../errors.js";
import { paint } from "./style.js";

/** Prints a fatal error as one line (plus a hint), or with its stack under --debug; returns the exit code. */
export function reportFatal(err: unknown, options: { debug: boolean }): number {
  if (isEcrxError(err)) {
    process.stderr.write(`${paint("red", "ecrx:", process.stderr)} ${err.message}\n`);
    if (err.hint) process.stderr.write(`${paint("yellow", "hint:", process.stderr)} ${err.hint}\n`);
    if (options.debug && err.stack) process.stderr.write(`${err.stack}\n`);
    return EXIT_CODES[err.code];
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`ecrx: internal error: ${message.split("\n")[0]}\n`);
  if (options.debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return EXIT_CODES.INTERNAL;
}
