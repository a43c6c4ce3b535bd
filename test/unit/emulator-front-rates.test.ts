import { describe, expect, it } from "vitest";
import { DEFAULT_RATES, RateLimiter, TokenBucket } from "../../src/emulator/rates.js";

function fakeClock(): { now: () => number; advance(ms: number): void } {
  let t = 1000;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

describe("TokenBucket", () => {
  it("allows a burst of its capacity, then refills at its rate", () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(10, 10, clock.now);
    for (let i = 0; i < 10; i++) expect(bucket.tryTake()).toBe(true);
    expect(bucket.tryTake()).toBe(false);
    clock.advance(99);
    expect(bucket.tryTake()).toBe(false);
    clock.advance(1);
    expect(bucket.tryTake()).toBe(true);
    expect(bucket.tryTake()).toBe(false);
  });

  it("never holds more than its capacity", () => {
    const clock = fakeClock();
    const bucket = new TokenBucket(10, 10, clock.now);
    clock.advance(60_000);
    let taken = 0;
    while (bucket.tryTake()) taken++;
    expect(taken).toBe(10);
  });
});

describe("RateLimiter", () => {
  it("applies ECR's per-operation rates, private and public apart", () => {
    const clock = fakeClock();
    const limiter = new RateLimiter("aws", clock.now);
    const burst = (service: "ecr" | "ecr-public", op: string): number => {
      let n = 0;
      while (limiter.allow(service, op) && n < 10_000) n++;
      return n;
    };
    expect(burst("ecr", "PutImage")).toBe(10);
    expect(burst("ecr", "InitiateLayerUpload")).toBe(100);
    expect(burst("ecr-public", "InitiateLayerUpload")).toBe(10);
    expect(burst("ecr-public", "UploadLayerPart")).toBe(260);
    expect(burst("ecr", "UploadLayerPart")).toBe(500);
    // Unlisted operations, and names that only exist on Object.prototype, are not limited.
    expect(burst("ecr", "DescribeRepositories")).toBe(10_000);
    expect(burst("ecr", "constructor")).toBe(10_000);
    expect(DEFAULT_RATES.ecr.BatchGetImage).toBe(2000);
  });

  it("limits nothing when off", () => {
    const limiter = new RateLimiter("off", fakeClock().now);
    for (let i = 0; i < 1000; i++) expect(limiter.allow("ecr", "PutImage")).toBe(true);
  });
});
