import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";

/**
 * A temporary folder for the test file, removed after its tests; `fresh(name)` gives a new path in
 * it each call (nothing is created there).
 */
export function useScratch(prefix: string): { fresh: (name?: string) => string; root: () => string } {
  let root = "";
  let count = 0;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), `ecrx-${prefix}-`));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });
  return { fresh: (name = "t") => join(root, `${count++}-${name}`), root: () => root };
}
