import { expect } from "vitest";
import { EcrxError } from "../../src/errors.js";

/** Awaits `promise` and checks it failed with an EcrxError of `code`, one line, matching `message`. */
export async function expectEcrxError(
  promise: Promise<unknown>,
  code: string,
  message: RegExp,
): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code} ${String(message)}`).toBeInstanceOf(EcrxError);
  expect((err as EcrxError).code).toBe(code);
  expect((err as EcrxError).message).toMatch(message);
  expect((err as EcrxError).message).not.toContain("\n");
}
