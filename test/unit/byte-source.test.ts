/**
 * Reading a file blob into the reader's own buffers (FileRangeStream, VerifiedByteSource, the
 * PartReader's filled parts): the same bytes and the same integrity checks as the stream path.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256Digest, verifiedStream, VerifiedByteSource } from "../../src/manifest/digest.js";
import { PartReader } from "../../src/transfer/part-reader.js";
import { asByteSource, FileRangeStream } from "../../src/util/byte-source.js";

const KiB = 1024;
let work: string;
let file: string;
const data = randomBytes(3 * 1024 * KiB + 777);

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ecrx-byte-source-"));
  file = join(work, "blob");
  await writeFile(file, data);
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function readAllInto(source: { readInto(t: Uint8Array): Promise<number> }, size: number) {
  const parts: Buffer[] = [];
  for (;;) {
    const target = Buffer.alloc(size);
    const read = await source.readInto(target);
    if (read === 0) return Buffer.concat(parts);
    parts.push(target.subarray(0, read));
  }
}

describe("FileRangeStream", () => {
  it("gives the bytes of its range, read as a stream or into the reader's buffers", async () => {
    const range = data.subarray(1000, 2_500_000 + 1);
    expect((await buffer(new FileRangeStream(file, 1000, 2_500_000))).equals(range)).toBe(true);
    const bytes = new FileRangeStream(file, 1000, 2_500_000);
    expect((await readAllInto(bytes, 300 * KiB)).equals(range)).toBe(true);
    // The end reached, the file is let go; asking again still says "the end".
    expect(bytes.destroyed).toBe(true);
    expect(await bytes.readInto(Buffer.alloc(10))).toBe(0);
  });

  it("is a ByteSource only until it is read as a stream, and cannot be read both ways", async () => {
    const stream = new FileRangeStream(file, 0, 99);
    expect(asByteSource(stream)).toBe(stream);
    await new Promise((resolve) => stream.once("readable", resolve));
    stream.read();
    expect(asByteSource(stream)).toBeUndefined();
    await expect(stream.readInto(Buffer.alloc(10))).rejects.toThrow(/readInto after stream reads/);
    expect(asByteSource(Readable.from([data]))).toBeUndefined();
  });

  it("fails with INVALID_INPUT when the file is shorter than its range", async () => {
    const short = new FileRangeStream(file, data.length - 10, data.length + 99);
    await expect(short.readInto(Buffer.alloc(200))).rejects.toMatchObject({
      code: "INVALID_INPUT",
      message: expect.stringMatching(/ended at byte/),
    });
    await expect(buffer(new FileRangeStream(file, data.length - 10, data.length + 99))).rejects.toMatchObject(
      {
        code: "INVALID_INPUT",
      },
    );
  });
});

describe("VerifiedByteSource", () => {
  const expected = { digest: sha256Digest(data), size: data.length };

  it("is what verifiedStream makes of a file, and verifies it read either way", async () => {
    let progress = 0;
    const into = verifiedStream(new FileRangeStream(file, 0, data.length - 1), expected, {
      onBytes: (n) => (progress += n),
    });
    expect(into).toBeInstanceOf(VerifiedByteSource);
    expect((await readAllInto(into as VerifiedByteSource, 1024 * KiB)).equals(data)).toBe(true);
    expect(into.digest).toBe(expected.digest);
    expect(progress).toBe(data.length);
    expect(into.verifies({ ...expected, sizeIsExact: true })).toBe(true);

    const streamed = verifiedStream(new FileRangeStream(file, 0, data.length - 1), expected);
    expect((await buffer(streamed)).equals(data)).toBe(true);
    expect(streamed.bytes).toBe(data.length);
  });

  it("fails INTEGRITY on a wrong digest at the end and on too many bytes at once, either way", async () => {
    const wrong = { digest: sha256Digest(Buffer.from("other")), size: data.length };
    const cases = [
      { expected: wrong, message: /digest mismatch/ },
      { expected: { ...expected, size: 1000 }, message: /got at least/ },
      { expected: { ...expected, size: data.length + 1 }, message: /got 3146505/ },
    ];
    for (const c of cases) {
      const into = verifiedStream(
        new FileRangeStream(file, 0, data.length - 1),
        c.expected,
      ) as VerifiedByteSource;
      await expect(readAllInto(into, 1024 * KiB)).rejects.toMatchObject({
        code: "INTEGRITY",
        message: expect.stringMatching(c.message),
      });
      const streamed = verifiedStream(new FileRangeStream(file, 0, data.length - 1), c.expected);
      await expect(buffer(streamed)).rejects.toMatchObject({ code: "INTEGRITY" });
    }
  });

  it("refuses to read once destroyed (an interrupted push), without an unheard 'error' event", async () => {
    const into = verifiedStream(
      new FileRangeStream(file, 0, data.length - 1),
      expected,
    ) as VerifiedByteSource;
    const reader = new PartReader(into, 1024 * KiB);
    expect(await reader.next()).toHaveLength(1024 * KiB);
    into.destroy(new Error("interrupted"));
    await expect(reader.next()).rejects.toThrow("interrupted");
  });
});

describe("PartReader over a ByteSource", () => {
  it("fills its parts in place: the same parts, and the same digest, as from chunks", async () => {
    const expected = { digest: sha256Digest(data), size: data.length };
    const partSize = 1024 * KiB;
    const cut = async (body: Readable) => {
      const reader = new PartReader(body, partSize);
      const parts: Buffer[] = [];
      for (let part = await reader.next(); part !== undefined; part = await reader.next()) parts.push(part);
      return parts;
    };
    const filled = await cut(verifiedStream(new FileRangeStream(file, 0, data.length - 1), expected));
    const chunked = await cut(
      verifiedStream(Readable.from([data.subarray(0, 5000), data.subarray(5000)]), expected),
    );
    expect(filled.map((p) => p.length)).toEqual([partSize, partSize, partSize, 777]);
    expect(filled.map((p) => p.length)).toEqual(chunked.map((p) => p.length));
    const hash = (parts: Buffer[]) => parts.reduce((h, p) => h.update(p), createHash("sha256")).digest("hex");
    expect(hash(filled)).toBe(hash(chunked));
    expect(`sha256:${hash(filled)}`).toBe(expected.digest);
  });
});
