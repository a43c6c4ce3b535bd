import { expect } from "vitest";
import { EcrxError } from "../../src/errors.js";

/**
 * Awaits `promise` and checks it failed with an EcrxError of `code`, one line, matching `message`;
 * returns the error, for checks of its other fields.
 */
export async function expectEcrxError(
  promise: Promise<unknown>,
  code: string,
  message: RegExp,
): Promise<EcrxError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code} ${String(message)}`).toBeInstanceOf(EcrxError);
  const e = err as EcrxError;
  expect(e.code).toBe(code);
  expect(e.message).toMatch(message);
  expect(e.message).not.toContain("\n");
  return e;
}
