import { describe, expect, it } from "vitest";
import { FaultInjector, parseFaultSpec, seededRandom } from "../../src/emulator/faults.js";
import { EcrxError } from "../../src/errors.js";

describe("parseFaultSpec", () => {
  it("parses every kind and target form", () => {
    expect(
      parseFaultSpec(
        "UploadLayerPart:lost=0.05, PutImage:throttle=0.3,*:error=0.02,download:reset=0.05,*:latency=20",
      ),
    ).toEqual([
      { target: "UploadLayerPart", kind: "lost", value: 0.05 },
      { target: "PutImage", kind: "throttle", value: 0.3 },
      { target: "*", kind: "error", value: 0.02 },
      { target: "download", kind: "reset", value: 0.05 },
      { target: "*", kind: "latency", value: 20 },
    ]);
    expect(parseFaultSpec("registry:error=1,*:throttle=0,PutImage:latency=0")).toHaveLength(3);
  });

  it("treats an empty spec as no faults", () => {
    expect(parseFaultSpec("")).toEqual([]);
    expect(parseFaultSpec("  ")).toEqual([]);
  });

  it.each([
    ["PutImage", "not TARGET:KIND=VALUE"],
    ["PutImage:throttle", "not TARGET:KIND=VALUE"],
    ["PutImage:explode=0.1", 'unknown kind "explode"'],
    ["PutImage:throttle=1.5", "must be in 0..1"],
    ["PutImage:throttle=-0.1", "must be in 0..1"],
    ["PutImage:throttle=abc", "must be in 0..1"],
    ["PutImage:latency=1e9", "milliseconds"],
    ["PutImage:latency=999999", "milliseconds"],
    ["putImage:error=0.1", "not an operation name"],
    ["PutImage:error=0.1,,*:error=0.2", "empty item"],
    ["PutImage:error=0.1,PutImage:error=0.2", "given twice"],
  ])("refuses %j with a clear USAGE error", (spec, fragment) => {
    let caught: unknown;
    try {
      parseFaultSpec(spec);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(EcrxError);
    expect((caught as EcrxError).code).toBe("USAGE");
    expect((caught as EcrxError).message).toContain(fragment);
    expect((caught as EcrxError).message).toContain(spec);
  });
});

describe("FaultInjector", () => {
  it("is repeatable for one seed and differs across seeds", () => {
    const rules = parseFaultSpec("*:error=0.5");
    const draw = (seed: number): boolean[] => {
      const injector = new FaultInjector(rules, seed);
      return Array.from({ length: 64 }, () => injector.decide("PutImage").refuse === "error");
    };
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
  });

  it("hits at about the given probability", () => {
    const injector = new FaultInjector(parseFaultSpec("UploadLayerPart:lost=0.25"), 1);
    let lost = 0;
    for (let i = 0; i < 4000; i++) if (injector.decide("UploadLayerPart").lost) lost++;
    expect(lost / 4000).toBeGreaterThan(0.22);
    expect(lost / 4000).toBeLessThan(0.28);
  });

  it("lets a named rule override the wildcard, and leaves other targets alone", () => {
    const injector = new FaultInjector(
      parseFaultSpec("*:throttle=1,PutImage:throttle=0,*:latency=5,download:latency=7"),
      3,
    );
    expect(injector.decide("PutImage")).toEqual({ latencyMs: 5, lost: false });
    expect(injector.decide("InitiateLayerUpload")).toEqual({ latencyMs: 5, refuse: "throttle", lost: false });
    expect(injector.decide("download")).toEqual({ latencyMs: 7, refuse: "throttle", lost: false });
    const only = new FaultInjector(parseFaultSpec("PutImage:reset=1"), 3);
    expect(only.decide("UploadLayerPart")).toEqual({ latencyMs: 0, lost: false });
    expect(only.decide("PutImage").refuse).toBe("reset");
    expect(only.namedOperations()).toEqual(["PutImage"]);
  });

  it("has a PRNG spread over [0, 1)", () => {
    const random = seededRandom(42);
    const values = Array.from({ length: 1000 }, random);
    expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...values)).toBeLessThan(1);
    expect(values.filter((v) => v < 0.5).length).toBeGreaterThan(430);
    expect(values.filter((v) => v < 0.5).length).toBeLessThan(570);
  });
});
