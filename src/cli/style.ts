import { inspect } from "node:util";

/** The colors ecrx uses: status words and emphasis, nothing more. */
export type Style = "green" | "red" | "yellow" | "cyan" | "bold" | "dim";

interface ColorStream {
  isTTY?: boolean;
}

/**
 * Whether to color what goes to `stream`: never with NO_COLOR (https://no-color.org, any non-empty
 * value); always with FORCE_COLOR other than `0`/`false`; otherwise only on a terminal that is not
 * `TERM=dumb`.
 */
export function colorEnabled(stream: ColorStream, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR) return false;
  const force = env.FORCE_COLOR;
  if (force !== undefined && force !== "") return force !== "0" && force !== "false";
  return stream.isTTY === true && env.TERM !== "dumb";
}

/** `text` in `style` when `stream` takes color, else unchanged. */
export function paint(
  style: Style,
  text: string,
  stream: ColorStream,
  env: NodeJS.ProcessEnv = process.env,
): string {
  if (!colorEnabled(stream, env)) return text;
  // util.inspect's SGR pairs rather than util.styleText: newer Node versions make styleText check
  // stdout itself, which is the wrong stream for what ecrx writes to stderr.
  const [open, close] = inspect.colors[style] ?? [0, 0];
  return `\u001b[${open}m${text}\u001b[${close}m`;
}
