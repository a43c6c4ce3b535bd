import { describe, expect, it } from "vitest";
import { choosePartSize, MiB, parseSize } from "../../src/transfer/part-size.js";

describe("choosePartSize", () => {
  it("keeps the requested size while the layer fits in the part limit", () => {
    expect(choosePartSize(1024 * MiB, 4200)).toBe(10 * MiB);
    expect(choosePartSize(41_000 * MiB, 4200)).toBe(10 * MiB);
    expect(choosePartSize(100 * MiB, 4200, 5 * MiB)).toBe(5 * MiB);
  });

  it("grows in whole MiB only past the part limit: ECR's 4,200 parts, ECR Public's 1,000", () => {
    // 50 GiB / 4,200 parts = 12.19 MiB -> 13 MiB.
    expect(choosePartSize(50 * 1024 * MiB, 4200)).toBe(13 * MiB);
    // 10,000 MiB on ECR Public needs 10 MiB parts; 10,001 MiB needs 11.
    expect(choosePartSize(10_000 * MiB, 1000)).toBe(10 * MiB);
    expect(choosePartSize(10_001 * MiB, 1000)).toBe(11 * MiB);
    const size = 52_000 * MiB;
    expect(Math.ceil(size / choosePartSize(size, 4200))).toBeLessThanOrEqual(4200);
  });

  it("refuses part sizes outside 5..20 MiB and layers that would need parts over 20 MiB", () => {
    expect(() => choosePartSize(MiB, 4200, 4 * MiB)).toThrow(/outside ECR's limits/);
    expect(() => choosePartSize(MiB, 4200, 21 * MiB)).toThrow(/outside ECR's limits/);
    expect(() => choosePartSize(25_000 * MiB, 1000)).toThrow(/more than 1000 parts of 20 MiB/);
  });
});

describe("parseSize", () => {
  it("reads binary and decimal units as people write them", () => {
    expect(parseSize("10MiB")).toBe(10 * MiB);
    expect(parseSize("10M")).toBe(10 * MiB);
    expect(parseSize("10MB")).toBe(10_000_000);
    expect(parseSize("1GiB")).toBe(1024 * MiB);
    expect(parseSize("1.5g")).toBe(1.5 * 1024 * MiB);
    expect(parseSize("512k")).toBe(512 * 1024);
    expect(parseSize("1048576")).toBe(MiB);
    expect(parseSize("7b")).toBe(7);
  });

  it("says what it cannot read", () => {
    expect(() => parseSize("ten megs")).toThrow(/cannot read the size "ten megs"/);
    expect(() => parseSize("")).toThrow(/cannot read/);
    expect(() => parseSize("10XB")).toThrow(/cannot read/);
  });
});
