import { describe, expect, it } from "vitest";
import { EcrxError } from "../../src/errors.js";
import { fnv1a, inShard, parseShard, sync } from "../../src/sync.js";
import { expectEcrxError } from "../helpers/expect-error.js";

describe("fnv1a", () => {
  it("gives the published FNV-1a 32-bit values", () => {
    // From the FNV reference test vectors (Fowler, Noll, Vo).
    expect(fnv1a("")).toBe(0x811c9dc5);
    expect(fnv1a("a")).toBe(0xe40c292c);
    expect(fnv1a("foobar")).toBe(0xbf9cf968);
  });

  it("hashes the UTF-8 bytes, and stays an unsigned 32-bit number", () => {
    // "é" is c3 a9 in UTF-8: the hash of those two bytes, not of the one UTF-16 unit.
    let expected = 0x811c9dc5;
    for (const byte of [0xc3, 0xa9]) expected = Math.imul(expected ^ byte, 0x01000193) >>> 0;
    expect(fnv1a("é")).toBe(expected);
    expect(fnv1a("é")).not.toBe(fnv1a("\u00e9".normalize("NFD")));
    for (const tag of ["latest", "v1.2.3", "x".repeat(300), "🚀"]) {
      const hash = fnv1a(tag);
      expect(Number.isInteger(hash)).toBe(true);
      expect(hash).toBeGreaterThanOrEqual(0);
      expect(hash).toBeLessThan(2 ** 32);
      expect(fnv1a(tag)).toBe(hash);
    }
  });
});

describe("parseShard", () => {
  it("reads I/N with 0 <= I < N", () => {
    expect(parseShard("0/3")).toEqual({ index: 0, count: 3 });
    expect(parseShard("2/3")).toEqual({ index: 2, count: 3 });
    expect(parseShard(" 7/8 ")).toEqual({ index: 7, count: 8 });
    expect(parseShard("0/1")).toEqual({ index: 0, count: 1 });
  });

  it.each(["3/3", "4/3", "1/0", "0/0", "-1/3", "1", "1/", "/3", "a/b", "1/3/4", "1.5/3", "1 /3", ""])(
    "refuses %j as a usage error with a hint",
    (text) => {
      let caught: unknown;
      try {
        parseShard(text);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(EcrxError);
      expect((caught as EcrxError).code).toBe("USAGE");
      expect((caught as EcrxError).message).toMatch(/I\/N/);
      expect((caught as EcrxError).hint).toMatch(/JOB_COMPLETION_INDEX/);
    },
  );
});

describe("inShard", () => {
  const tags = Array.from({ length: 3000 }, (_, i) => `v${Math.floor(i / 100)}.${i % 100}`);

  it("takes every tag without a shard, and every tag with one shard", () => {
    expect(tags.every((t) => inShard(t, undefined))).toBe(true);
    expect(tags.every((t) => inShard(t, { index: 0, count: 1 }))).toBe(true);
  });

  it("puts each tag in exactly one shard of N, by its hash", () => {
    for (const count of [2, 3, 7]) {
      for (const tag of tags.slice(0, 500)) {
        const shards = Array.from({ length: count }, (_, index) => index).filter((index) =>
          inShard(tag, { index, count }),
        );
        expect(shards).toEqual([fnv1a(tag) % count]);
      }
    }
  });

  it("spreads tags about evenly over the shards", () => {
    const sizes = [0, 1, 2].map((index) => tags.filter((t) => inShard(t, { index, count: 3 })).length);
    expect(sizes.reduce((a, b) => a + b)).toBe(tags.length);
    for (const size of sizes) {
      expect(size).toBeGreaterThan(tags.length / 3 - 150);
      expect(size).toBeLessThan(tags.length / 3 + 150);
    }
  });

  it("does not move a tag when other tags come or go", () => {
    const before = tags.filter((t) => inShard(t, { index: 1, count: 3 }));
    const more = [...tags, "new-1", "new-2", "a-new-one"].reverse();
    const after = more.filter((t) => inShard(t, { index: 1, count: 3 }) && tags.includes(t));
    expect(after.sort()).toEqual(before.sort());
  });
});

describe("sync arguments", () => {
  it("needs --tags or --all-tags", async () => {
    await expectEcrxError(sync("127.0.0.1:1/a", "127.0.0.1:1/b"), "USAGE", /say which tags to sync/);
  });

  it("takes repositories, not tagged images or files", async () => {
    await expectEcrxError(
      sync("127.0.0.1:1/a:v1", "127.0.0.1:1/b", { allTags: true }),
      "USAGE",
      /drop the tag or digest/,
    );
    await expectEcrxError(
      sync("127.0.0.1:1/a", "oci:/tmp/layout", { allTags: true }),
      "USAGE",
      /not a repository/,
    );
  });

  it("refuses a pattern that is not a regular expression", async () => {
    await expectEcrxError(sync("127.0.0.1:1/a", "127.0.0.1:1/b", { tags: "v1.(" }), "USAGE", /--tags/);
  });
});
