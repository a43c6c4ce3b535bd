import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Writable } from "node:stream";
import { createGunzip, gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { decompressionLimit, ExpansionLimit, MAX_EXPANSION_RATIO } from "../../src/util/expansion-limit.js";

const MiB = 1024 * 1024;

describe("decompression bombs", () => {
  it("allow 200x the compressed size, and never less than 1 GiB", () => {
    expect(decompressionLimit(1000)).toBe(1024 ** 3);
    expect(decompressionLimit(100 * MiB)).toBe(100 * MiB * MAX_EXPANSION_RATIO);
  });

  it("stop a gzip stream as soon as it expands past the limit, without inflating the rest", async () => {
    // 64 MiB of zeros gzip to ~64 KiB: a 1000:1 bomb in miniature.
    const bomb = gzipSync(Buffer.alloc(64 * MiB));
    let inflated = 0;
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        inflated += chunk.length;
        callback();
      },
    });
    await expect(
      pipeline(Readable.from([bomb]), createGunzip(), new ExpansionLimit(4 * MiB, "layer sha256:bomb"), sink),
    ).rejects.toMatchObject({
      code: "INVALID_INPUT",
      message: expect.stringMatching(
        /^layer sha256:bomb decompresses to more than 4194304 bytes .* refused as a decompression bomb$/,
      ),
    });
    expect(inflated).toBeLessThanOrEqual(4 * MiB);
  });

  it("let an honest stream through untouched", async () => {
    const chunks: Buffer[] = [];
    await pipeline(
      Readable.from([Buffer.from("honest "), Buffer.from("bytes")]),
      new ExpansionLimit(12, "small"),
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          chunks.push(chunk);
          callback();
        },
      }),
    );
    expect(Buffer.concat(chunks).toString()).toBe("honest bytes");
  });
});
