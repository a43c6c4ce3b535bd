import { EXIT_CODES, isEcrxError } from "../errors.js";
import { addCredentialsSecret, addSecret, redact } from "../util/redact.js";
import { paint } from "./style.js";

export { redact };

/**
 * Prints a fatal error as one line (plus a hint), or with its stack under --debug; returns the exit
 * code. Secrets are redacted (see redact) from the message, the hint and the stack.
 */
export function reportFatal(err: unknown, options: { debug: boolean }): number {
  if (isEcrxError(err)) {
    process.stderr.write(`${paint("red", "ecrx:", process.stderr)} ${redact(err.message)}\n`);
    if (err.hint) process.stderr.write(`${paint("yellow", "hint:", process.stderr)} ${redact(err.hint)}\n`);
    if (options.debug && err.stack) process.stderr.write(`${redact(err.stack)}\n`);
    return EXIT_CODES[err.code];
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`ecrx: internal error: ${redact(message.split("\n")[0] ?? "")}\n`);
  if (options.debug && err instanceof Error && err.stack) process.stderr.write(`${redact(err.stack)}\n`);
  return EXIT_CODES.INTERNAL;
}

/**
 * Registers the secrets of this process (environment, `--*creds` arguments) and redacts
 * everything written to stdout and stderr from now on, `--debug` output included: the one place
 * every message passes, whichever transport built it.
 */
export function installRedaction(argv: string[], env: NodeJS.ProcessEnv = process.env): void {
  // `serve` prints the environment to export and `login` the registry password: on purpose.
  const command = argv.slice(2).find((arg) => !arg.startsWith("-"));
  if (command === "serve" || command === "login") return;
  addSecret(env.AWS_SECRET_ACCESS_KEY);
  addSecret(env.AWS_SESSION_TOKEN);
  argv.forEach((arg, i) => {
    const inline = /^--(?:[a-z]+-)?creds=(.*)$/.exec(arg);
    if (inline) addCredentialsSecret(inline[1]!);
    else if (/^--(?:[a-z]+-)?creds$/.test(arg) && argv[i + 1] !== undefined)
      addCredentialsSecret(argv[i + 1]!);
  });
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = (chunk: unknown, ...rest: unknown[]) =>
      write(typeof chunk === "string" ? redact(chunk) : chunk, ...rest);
  }
}
