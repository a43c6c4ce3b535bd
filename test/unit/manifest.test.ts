import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EcrxError } from "../../src/errors.js";
import { sniffCompression } from "../../src/manifest/detect.js";
import {
  DigestVerifier,
  parseDigest,
  sha256Digest,
  tryParseDigest,
  verifiedStream,
  verifyBytes,
} from "../../src/manifest/digest.js";
import {
  MediaType,
  convertMediaType,
  layerCompression,
  layerMediaType,
  mediaTypeFlavour,
} from "../../src/manifest/media-types.js";
import {
  MAX_MANIFEST_BYTES,
  parseImageConfig,
  parseManifest,
  parseRawManifest,
} from "../../src/manifest/parse.js";
import {
  formatPlatform,
  hostPlatform,
  listPlatforms,
  parsePlatform,
  platformMatches,
  selectManifest,
} from "../../src/manifest/platform.js";
import type { ImageIndex } from "../../src/manifest/types.js";

const D1 = sha256Digest(Buffer.from("one"));
const D2 = sha256Digest(Buffer.from("two"));

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

function imageManifest(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: D1, size: 10 },
    layers: [{ mediaType: MediaType.OciLayerGzip, digest: D2, size: 20 }],
    ...overrides,
  };
}

function expectCode(fn: () => unknown, code: string, message?: RegExp): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(EcrxError);
    expect((err as EcrxError).code).toBe(code);
    expect((err as EcrxError).message).not.toContain("\n");
    if (message) expect((err as EcrxError).message).toMatch(message);
    return;
  }
  throw new Error("expected an error");
}

describe("digest", () => {
  it("parses sha256 and sha512 digests and rejects the rest", () => {
    expect(tryParseDigest(D1)).toEqual({ algorithm: "sha256", hex: D1.slice(7) });
    expect(tryParseDigest(`sha512:${"a".repeat(128)}`)?.algorithm).toBe("sha512");
    for (const bad of [
      `sha256:${"A".repeat(64)}`,
      `sha256:${"a".repeat(63)}`,
      "md5:abc",
      "sha256",
      `sha512:${"a".repeat(64)}`,
    ]) {
      expect(tryParseDigest(bad)).toBeUndefined();
    }
    expectCode(() => parseDigest("nope", "USAGE"), "USAGE", /invalid digest/);
  });

  it("computes sha256 like sha256sum", () => {
    expect(sha256Digest(Buffer.from(""))).toBe(
      "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
  });

  it("verifyBytes checks size and digest", () => {
    verifyBytes(Buffer.from("one"), { digest: D1, size: 3 }, "x");
    expectCode(
      () => verifyBytes(Buffer.from("one"), { digest: D1, size: 4 }, "x"),
      "INTEGRITY",
      /expected 4 bytes/,
    );
    expectCode(() => verifyBytes(Buffer.from("two"), { digest: D1 }, "x"), "INTEGRITY", /digest mismatch/);
  });

  it("passes the bytes of a good stream through and counts them", async () => {
    const data = Buffer.alloc(300_000, 7);
    let progress = 0;
    const out = verifiedStream(
      Readable.from([data.subarray(0, 1000), data.subarray(1000)]),
      {
        digest: sha256Digest(data),
        size: data.length,
      },
      { onBytes: (n) => (progress += n) },
    );
    expect((await buffer(out)).equals(data)).toBe(true);
    expect(out.bytes).toBe(data.length);
    expect(progress).toBe(data.length);
  });

  it("fails a stream with the wrong digest, too few or too many bytes", async () => {
    const data = Buffer.from("hello world");
    const cases = [
      { body: data, expected: { digest: D1, size: data.length }, message: /digest mismatch/ },
      {
        body: data,
        expected: { digest: sha256Digest(data), size: data.length + 1 },
        message: /expected 12 bytes, got 11/,
      },
      { body: data, expected: { digest: sha256Digest(data), size: 5 }, message: /got at least/ },
    ];
    for (const c of cases) {
      const out = verifiedStream(Readable.from([c.body]), c.expected);
      await expect(buffer(out)).rejects.toMatchObject({
        code: "INTEGRITY",
        message: expect.stringMatching(c.message),
      });
    }
  });

  it("forwards a source error and is a Transform for pipelines", async () => {
    const failing = new Readable({
      read() {
        this.destroy(new Error("disk gone"));
      },
    });
    await expect(buffer(verifiedStream(failing, { digest: D1, size: 3 }))).rejects.toThrow("disk gone");
  });

  it("computes the digest when none is expected and treats an inexact size as an upper bound", async () => {
    const data = Buffer.from("compressed on the way");
    const verifier = new DigestVerifier({ digest: undefined, size: 100, sizeIsExact: false });
    await buffer(Readable.from([data]).pipe(verifier));
    expect(verifier.digest).toBe(sha256Digest(data));
    expect(verifier.bytes).toBe(data.length);
    const tooBig = verifiedStream(Readable.from([data]), { size: 5, sizeIsExact: false });
    await expect(buffer(tooBig)).rejects.toMatchObject({
      code: "INTEGRITY",
      message: expect.stringMatching(/at most 5/),
    });
  });
});

describe("parseManifest", () => {
  it("parses an OCI image manifest and keeps the bytes verbatim", () => {
    const bytes = Buffer.from(JSON.stringify(imageManifest(), null, 3));
    const parsed = parseManifest(bytes);
    expect(parsed.kind).toBe("manifest");
    if (parsed.kind !== "manifest") return;
    expect(parsed.manifest.layers).toHaveLength(1);
    expect(parsed.raw).toEqual({ bytes, mediaType: MediaType.OciManifest, digest: sha256Digest(bytes) });
  });

  it("parses Docker and OCI indexes and infers a missing mediaType", () => {
    const list = json({
      schemaVersion: 2,
      mediaType: MediaType.DockerManifestList,
      manifests: [
        {
          mediaType: MediaType.DockerManifest,
          digest: D1,
          size: 5,
          platform: { os: "linux", architecture: "amd64" },
        },
      ],
    });
    const parsed = parseManifest(list);
    expect(parsed.kind).toBe("index");
    expect(parsed.raw.mediaType).toBe(MediaType.DockerManifestList);
    const bare = parseManifest(json({ schemaVersion: 2, manifests: [] }));
    expect(bare.raw.mediaType).toBe(MediaType.OciIndex);
    const given = parseManifest(json({ ...imageManifest(), mediaType: undefined }), {
      mediaType: MediaType.DockerManifest,
    });
    expect(given.raw.mediaType).toBe(MediaType.DockerManifest);
  });

  it("accepts zero layers (artifacts) and keeps annotations and subject", () => {
    const parsed = parseManifest(
      json(
        imageManifest({
          layers: [],
          annotations: { a: "b" },
          subject: { mediaType: MediaType.OciManifest, digest: D1, size: 1 },
        }),
      ),
    );
    expect(parsed.kind === "manifest" && parsed.manifest.annotations).toEqual({ a: "b" });
  });

  it.each([
    ["not JSON", Buffer.from("{"), "INVALID_INPUT", /not valid JSON/],
    ["an array", json([]), "INVALID_INPUT", /JSON object/],
    ["schema 1", json({ schemaVersion: 1, fsLayers: [] }), "UNSUPPORTED", /schema 1/],
    ["schemaVersion 3", json(imageManifest({ schemaVersion: 3 })), "UNSUPPORTED", /schemaVersion 3/],
    [
      "an unknown media type",
      json(imageManifest({ mediaType: "application/vnd.example+json" })),
      "UNSUPPORTED",
      /unsupported media type/,
    ],
    [
      "a bad layer digest",
      json(imageManifest({ layers: [{ mediaType: MediaType.OciLayer, digest: "sha256:xyz", size: 1 }] })),
      "INVALID_INPUT",
      /layers\[0\] has an invalid digest/,
    ],
    [
      "a negative size",
      json(imageManifest({ layers: [{ mediaType: MediaType.OciLayer, digest: D1, size: -1 }] })),
      "INVALID_INPUT",
      /invalid size/,
    ],
    [
      "a fractional size",
      json(imageManifest({ config: { mediaType: MediaType.OciConfig, digest: D1, size: 1.5 } })),
      "INVALID_INPUT",
      /config has an invalid size/,
    ],
    [
      "an unsafe size",
      json(imageManifest({ config: { mediaType: MediaType.OciConfig, digest: D1, size: 2 ** 60 } })),
      "INVALID_INPUT",
      /invalid size/,
    ],
    [
      "a media type with parameters",
      json(imageManifest({ config: { mediaType: "application/json; charset=utf-8", digest: D1, size: 1 } })),
      "INVALID_INPUT",
      /invalid mediaType/,
    ],
    ["no layers array", json(imageManifest({ layers: null })), "INVALID_INPUT", /"layers" must be an array/],
    ["no config", json(imageManifest({ config: undefined })), "INVALID_INPUT", /"config" is missing/],
    ["bad annotations", json(imageManifest({ annotations: { a: 1 } })), "INVALID_INPUT", /annotations/],
  ])("rejects %s", (_name, bytes, code, message) => {
    expectCode(() => parseManifest(bytes), code, message);
  });

  it("rejects manifests over 4 MiB", () => {
    const big = json(imageManifest({ annotations: { pad: "x".repeat(MAX_MANIFEST_BYTES) } }));
    expectCode(() => parseManifest(big), "INVALID_INPUT", /over the 4194304-byte limit/);
  });

  it("rejects an image served as an index", () => {
    expectCode(
      () => parseManifest(json(imageManifest()), { mediaType: MediaType.OciIndex }),
      "INVALID_INPUT",
      /served as/,
    );
  });

  it("parseRawManifest rejects bytes that do not match the claimed digest", () => {
    const bytes = json(imageManifest());
    expectCode(() => parseRawManifest({ bytes, mediaType: MediaType.OciManifest, digest: D1 }), "INTEGRITY");
    expect(
      parseRawManifest({ bytes, mediaType: MediaType.OciManifest, digest: sha256Digest(bytes) }).kind,
    ).toBe("manifest");
  });

  it("never throws anything but an EcrxError on arbitrary input", () => {
    const descriptor = fc.record(
      {
        mediaType: fc.oneof(fc.constantFrom(...Object.values(MediaType)), fc.string()),
        digest: fc.oneof(fc.constant(D1), fc.string()),
        size: fc.oneof(fc.nat(), fc.double(), fc.string()),
        platform: fc.option(fc.anything(), { nil: undefined }),
      },
      { requiredKeys: [] },
    );
    const doc = fc.record(
      {
        schemaVersion: fc.oneof(fc.constant(2), fc.anything()),
        mediaType: fc.oneof(fc.constantFrom(...Object.values(MediaType)), fc.anything()),
        config: fc.oneof(descriptor, fc.anything()),
        layers: fc.oneof(fc.array(descriptor), fc.anything()),
        manifests: fc.oneof(fc.array(descriptor), fc.anything()),
        annotations: fc.anything(),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(
        fc.oneof(
          doc.map((d) => json(d)),
          fc.uint8Array().map((b) => Buffer.from(b)),
          fc.string().map((s) => Buffer.from(s)),
        ),
        (bytes) => {
          try {
            const parsed = parseManifest(bytes);
            expect(["manifest", "index"]).toContain(parsed.kind);
          } catch (err) {
            expect(err).toBeInstanceOf(EcrxError);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("parseImageConfig", () => {
  it("reads rootfs.diff_ids", () => {
    const config = parseImageConfig(
      json({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [D1, D2] } }),
    );
    expect(config.rootfs?.diff_ids).toEqual([D1, D2]);
  });

  it("rejects bad diff_ids and wrong types", () => {
    expectCode(
      () => parseImageConfig(json({ rootfs: { type: "layers", diff_ids: ["x"] } })),
      "INVALID_INPUT",
      /diff_ids\[0\]/,
    );
    expectCode(() => parseImageConfig(json({ os: 3 })), "INVALID_INPUT", /"os" must be a string/);
    expectCode(() => parseImageConfig(Buffer.from("[]")), "INVALID_INPUT");
  });

  it("never throws anything but an EcrxError on arbitrary input", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.anything().map((v) => Buffer.from(JSON.stringify(v) ?? "")),
          fc.record({ rootfs: fc.anything(), os: fc.anything() }).map(json),
        ),
        (bytes) => {
          try {
            parseImageConfig(bytes);
          } catch (err) {
            expect(err).toBeInstanceOf(EcrxError);
          }
        },
      ),
    );
  });
});

describe("platform", () => {
  const index: ImageIndex = {
    schemaVersion: 2,
    manifests: [
      {
        mediaType: MediaType.OciManifest,
        digest: D1,
        size: 1,
        platform: { os: "linux", architecture: "amd64" },
      },
      {
        mediaType: MediaType.OciManifest,
        digest: D2,
        size: 1,
        platform: { os: "linux", architecture: "arm64", variant: "v8" },
      },
      {
        mediaType: MediaType.OciManifest,
        digest: D2,
        size: 1,
        platform: { os: "unknown", architecture: "unknown" },
      },
    ],
  };

  it("parses and formats os/arch[/variant]", () => {
    expect(parsePlatform("linux/arm/v7")).toEqual({ os: "linux", architecture: "arm", variant: "v7" });
    expect(formatPlatform(parsePlatform("linux/amd64"))).toBe("linux/amd64");
    for (const bad of ["linux", "linux/", "a/b/c/d", "linux/am d64"])
      expectCode(() => parsePlatform(bad), "USAGE");
  });

  it("matches aliases and default variants", () => {
    expect(platformMatches(parsePlatform("linux/x86_64"), { os: "linux", architecture: "amd64" })).toBe(true);
    expect(
      platformMatches(parsePlatform("linux/aarch64"), { os: "linux", architecture: "arm64", variant: "v8" }),
    ).toBe(true);
    expect(platformMatches(parsePlatform("linux/arm64/v8"), { os: "linux", architecture: "arm64" })).toBe(
      true,
    );
    expect(
      platformMatches(parsePlatform("linux/arm"), { os: "linux", architecture: "arm", variant: "v7" }),
    ).toBe(true);
    expect(
      platformMatches(parsePlatform("linux/arm/v6"), { os: "linux", architecture: "arm", variant: "v7" }),
    ).toBe(false);
    expect(platformMatches(parsePlatform("linux/amd64"), undefined)).toBe(false);
  });

  it("selects from an index and lists the platforms when none fits", () => {
    expect(selectManifest(index, parsePlatform("linux/arm64")).digest).toBe(D2);
    expect(listPlatforms(index)).toEqual(["linux/amd64", "linux/arm64/v8"]);
    expectCode(
      () => selectManifest(index, parsePlatform("linux/s390x")),
      "UNSUPPORTED",
      /linux\/amd64, linux\/arm64\/v8/,
    );
  });

  it("maps the host architecture", () => {
    expect(hostPlatform("x64")).toEqual({ os: "linux", architecture: "amd64" });
    expect(hostPlatform("arm64").variant).toBe("v8");
    expectCode(() => hostPlatform("mips"), "UNSUPPORTED");
  });

  it("parsePlatform never throws anything but an EcrxError", () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        try {
          expect(parsePlatform(formatPlatform(parsePlatform(s)))).toEqual(parsePlatform(s));
        } catch (err) {
          expect(err).toBeInstanceOf(EcrxError);
        }
      }),
    );
  });
});

describe("media types and compression", () => {
  it("maps layer media types to compression and back", () => {
    expect(layerCompression(MediaType.DockerLayerGzip)).toBe("gzip");
    expect(layerCompression(MediaType.OciLayerZstd)).toBe("zstd");
    expect(layerCompression(MediaType.OciLayer)).toBe("none");
    expect(layerCompression(MediaType.OciConfig)).toBeUndefined();
    expect(layerMediaType("gzip", "oci")).toBe(MediaType.OciLayerGzip);
    expect(layerMediaType("none", "docker")).toBe(MediaType.DockerLayer);
  });

  it("converts between Docker and OCI flavours", () => {
    expect(convertMediaType(MediaType.DockerManifestList, "oci")).toBe(MediaType.OciIndex);
    expect(convertMediaType(MediaType.OciConfig, "docker")).toBe(MediaType.DockerConfig);
    expect(convertMediaType(MediaType.OciLayerZstd, "docker")).toBe(MediaType.DockerLayerZstd);
    expect(convertMediaType("application/x-custom", "oci")).toBe("application/x-custom");
    expect(mediaTypeFlavour(MediaType.DockerConfig)).toBe("docker");
    expect(mediaTypeFlavour("text/plain")).toBeUndefined();
  });

  it("sniffs gzip, zstd and tar", () => {
    expect(sniffCompression(Buffer.from([0x1f, 0x8b, 8, 0]))).toBe("gzip");
    expect(sniffCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe("zstd");
    expect(sniffCompression(Buffer.from("usta"))).toBe("none");
    expect(sniffCompression(Buffer.alloc(0))).toBe("none");
  });
});
