/**
 * Fuzzing the parsers that read untrusted input: arbitrary bytes or strings give a valid result or
 * a clean EcrxError, never another exception or a hang. Run counts are bounded to keep it short.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EcrxError } from "../../src/errors.js";
import { parseManifest } from "../../src/manifest/parse.js";
import { parseReference } from "../../src/reference/reference.js";
import { indexTar, resolveMember } from "../../src/util/tar.js";
import tar from "tar-stream";

function cleanOrValid(run: () => unknown): void {
  try {
    run();
  } catch (err) {
    if (!(err instanceof EcrxError)) throw err;
    expect(err.message).not.toContain("\n");
  }
}

const descriptor = fc.record(
  {
    mediaType: fc.oneof(fc.constant("application/vnd.oci.image.layer.v1.tar+gzip"), fc.string()),
    digest: fc.oneof(fc.constant(`sha256:${"a".repeat(64)}`), fc.string()),
    size: fc.oneof(fc.nat(), fc.integer(), fc.double(), fc.string()),
    annotations: fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer())),
    platform: fc.record({ os: fc.string(), architecture: fc.string() }, { requiredKeys: [] }),
  },
  { requiredKeys: [] },
);
const manifestLike = fc.record(
  {
    schemaVersion: fc.oneof(fc.constant(2), fc.integer(), fc.string()),
    mediaType: fc.constantFrom(
      "application/vnd.oci.image.manifest.v1+json",
      "application/vnd.oci.image.index.v1+json",
      "application/vnd.docker.distribution.manifest.v2+json",
      "application/vnd.docker.distribution.manifest.list.v2+json",
      "application/x-unknown",
      "",
    ),
    config: descriptor,
    layers: fc.oneof(fc.array(descriptor, { maxLength: 4 }), fc.anything()),
    manifests: fc.oneof(fc.array(descriptor, { maxLength: 4 }), fc.anything()),
    subject: fc.oneof(descriptor, fc.anything()),
    annotations: fc.anything(),
  },
  { requiredKeys: [] },
);

describe("manifest parser", () => {
  it("arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) =>
        cleanOrValid(() => parseManifest(Buffer.from(bytes))),
      ),
      { numRuns: 500 },
    );
  });
  it("JSON of almost-manifest shape", () => {
    fc.assert(
      fc.property(manifestLike, fc.option(fc.string()), (doc, mediaType) =>
        cleanOrValid(() =>
          parseManifest(Buffer.from(JSON.stringify(doc)), mediaType === null ? {} : { mediaType }),
        ),
      ),
      { numRuns: 500 },
    );
  });
  it("arbitrary JSON values", () => {
    fc.assert(
      fc.property(fc.json(), (text) => cleanOrValid(() => parseManifest(Buffer.from(text)))),
      { numRuns: 300 },
    );
  });
});

describe("reference parser", () => {
  const pieces = fc.constantFrom(
    "oci:",
    "docker-archive:",
    "oci-archive:",
    "docker://",
    "public.ecr.aws/",
    ".dkr.ecr.",
    ".amazonaws.com",
    "123456789012",
    "us-east-1",
    ":",
    "@",
    "sha256:",
    "/",
    "..",
    "localhost:5000",
    "a",
    "A",
    "-",
    "_",
    ".",
    ",",
  );
  it("arbitrary strings and shuffled reference pieces", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 300 }),
          fc.array(pieces, { maxLength: 12 }).map((p) => p.join("")),
        ),
        (text) => cleanOrValid(() => parseReference(text)),
      ),
      { numRuns: 2000 },
    );
  });
});

describe("tar reader", () => {
  let dir: string;
  let seed: Buffer;
  let n = 0;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "ecrx-fuzz-tar-"));
    // A small archive with a long (pax) name, a folder and a symlink, to mutate.
    const pack = tar.pack();
    pack.entry({ name: "manifest.json" }, "[]");
    pack.entry({ name: `dir/${"long-name-".repeat(12)}file` }, Buffer.alloc(700, 1));
    pack.entry({ name: "link", type: "symlink", linkname: "dir/file" });
    pack.finalize();
    const chunks: Buffer[] = [];
    for await (const chunk of pack) chunks.push(chunk as Buffer);
    seed = Buffer.concat(chunks);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function check(bytes: Uint8Array): Promise<void> {
    const path = join(dir, `case-${++n}.tar`);
    await writeFile(path, bytes);
    try {
      const index = await indexTar(path);
      for (const name of [...index.members.keys(), "link", "../x", "/etc/passwd"]) {
        cleanOrValid(() => resolveMember(index, name));
      }
    } catch (err) {
      if (!(err instanceof EcrxError)) throw err;
    } finally {
      await rm(path, { force: true });
    }
  }

  it("arbitrary bytes", async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 2048 }), check), { numRuns: 200 });
  });
  it("a valid archive with bytes flipped, cut or appended", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
        fc.nat(),
        fc.uint8Array({ maxLength: 64 }),
        async (flips, cut, tail) => {
          const bytes = Buffer.from(seed);
          for (const [at, value] of flips) bytes[at % bytes.length] = value;
          await check(Buffer.concat([bytes.subarray(0, cut % (bytes.length + 1)), tail]));
        },
      ),
      { numRuns: 300 },
    );
  });
});
