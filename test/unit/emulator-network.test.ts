import { describe, expect, it } from "vitest";
import {
  describeNetwork,
  describeProfiles,
  formatRate,
  NETWORK_PROFILES,
  networkProfile,
  parseMilliseconds,
  parseRate,
  resolveNetwork,
  shapesConnections,
} from "../../src/emulator/network.js";
import { EcrxError } from "../../src/errors.js";

function usageMessage(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(EcrxError);
    expect((err as EcrxError).code).toBe("USAGE");
    expect((err as EcrxError).message).not.toContain("\n");
    return (err as EcrxError).message;
  }
  throw new Error("accepted");
}

describe("parseRate", () => {
  it("reads bytes, SI and binary prefixes, and bits, per second", () => {
    expect(parseRate("40MB/s")).toBe(40_000_000);
    expect(parseRate("40MiB/s")).toBe(40 * 1024 * 1024);
    expect(parseRate("320Mbit/s")).toBe(40_000_000);
    expect(parseRate("320Mbps")).toBe(40_000_000);
    expect(parseRate("320Mb/s")).toBe(40_000_000);
    expect(parseRate("2.5GB/s")).toBe(2_500_000_000);
    expect(parseRate("1GiB/s")).toBe(1024 ** 3);
    expect(parseRate("500kB/s")).toBe(500_000);
    expect(parseRate("500 KB/s")).toBe(500_000);
    expect(parseRate("16MB")).toBe(16_000_000);
    expect(parseRate("1000000")).toBe(1_000_000);
    expect(parseRate("0")).toBe(0);
  });

  it("refuses what is not a rate, naming the flag and the expected form", () => {
    for (const bad of ["", "fast", "40XB/s", "-5MB/s", "40 MB/h", "1e6", "MB/s", "40/s", "0x10"]) {
      const message = usageMessage(() => parseRate(bad));
      expect(message, bad).toContain("--conn-bandwidth");
      expect(message, bad).toContain("40MB/s");
    }
    expect(usageMessage(() => parseRate("10", "--other"))).toContain("--other");
  });

  it("refuses a cap too small to carry a request", () => {
    expect(usageMessage(() => parseRate("999"))).toContain("at least 1 kB/s");
    expect(parseRate("1kB/s")).toBe(1000);
  });
});

describe("formatRate", () => {
  it("writes rates for people", () => {
    expect(formatRate(30_000_000)).toBe("30 MB/s");
    expect(formatRate(40 * 1024 * 1024)).toBe("40 MiB/s");
    expect(formatRate(2_500_000_000)).toBe("2.5 GB/s");
    expect(formatRate(1024 ** 3)).toBe("1 GiB/s");
    expect(formatRate(123_456)).toBe("123 kB/s");
    expect(formatRate(999)).toBe("999 B/s");
  });

  it("gives back what parseRate reads", () => {
    for (const text of ["40MB/s", "40MiB/s", "2.5GB/s", "16MB/s", "750kB/s"]) {
      expect(parseRate(formatRate(parseRate(text)))).toBe(parseRate(text));
    }
  });
});

describe("parseMilliseconds", () => {
  it("reads milliseconds within bounds", () => {
    expect(parseMilliseconds("60", "--rtt", 10_000)).toBe(60);
    expect(parseMilliseconds("0.5", "--rtt", 10_000)).toBe(0.5);
    expect(parseMilliseconds("0", "--rtt", 10_000)).toBe(0);
  });

  it("refuses anything else, naming the flag", () => {
    for (const bad of ["", "-1", "ten", "10ms", "10001", "1e3"]) {
      const message = usageMessage(() => parseMilliseconds(bad, "--rtt", 10_000));
      expect(message, bad).toContain("--rtt");
      expect(message, bad).toContain("0..10000");
    }
  });
});

describe("network profiles", () => {
  it("hold the documented figures", () => {
    expect(networkProfile("in-region")).toEqual({
      name: "in-region",
      rttMs: 2,
      connBandwidth: 50_000_000,
      apiLatencyMs: 10,
    });
    expect(networkProfile("cross-region")).toMatchObject({
      rttMs: 60,
      connBandwidth: 30_000_000,
      apiLatencyMs: 10,
    });
    expect(networkProfile("far")).toMatchObject({ rttMs: 150, connBandwidth: 16_000_000, apiLatencyMs: 10 });
    for (const none of ["loopback", "none"]) {
      expect(networkProfile(none)).toMatchObject({ rttMs: 0, connBandwidth: 0, apiLatencyMs: 0 });
    }
  });

  it("refuse an unknown name, listing the known ones", () => {
    const message = usageMessage(() => networkProfile("mars"));
    expect(message).toContain('"mars"');
    for (const name of Object.keys(NETWORK_PROFILES)) expect(message).toContain(name);
    // Object.prototype's members are not profiles.
    usageMessage(() => networkProfile("constructor"));
  });

  it("are listed for --help, one line each", () => {
    const lines = describeProfiles();
    expect(lines).toHaveLength(Object.keys(NETWORK_PROFILES).length);
    expect(lines.find((l) => l.startsWith("cross-region"))).toMatch(
      /rtt +60 ms +30 MB\/s +API 10 ms +another/,
    );
    expect(lines.find((l) => l.startsWith("loopback"))).toContain("no shaping");
    // One column each: the figures line up.
    expect(new Set(lines.slice(0, 3).map((l) => l.indexOf("API")))).toHaveLength(1);
  });
});

describe("resolveNetwork", () => {
  it("takes a profile as it is", () => {
    expect(resolveNetwork("far")).toEqual({
      name: "far",
      rttMs: 150,
      connBandwidth: 16_000_000,
      apiLatencyMs: 10,
    });
  });

  it("lets explicit values override the profile's, and says so in the name", () => {
    expect(resolveNetwork("far", { connBandwidth: 8_000_000 })).toEqual({
      name: "far (adjusted)",
      rttMs: 150,
      connBandwidth: 8_000_000,
      apiLatencyMs: 10,
    });
    // An override equal to the profile's value changes nothing.
    expect(resolveNetwork("far", { rttMs: 150 }).name).toBe("far");
    expect(resolveNetwork("loopback", { rttMs: 5 })).toMatchObject({ rttMs: 5, connBandwidth: 0 });
  });

  it("defaults every value to none without a profile", () => {
    expect(resolveNetwork(undefined, { rttMs: 20 })).toEqual({
      name: "custom",
      rttMs: 20,
      connBandwidth: 0,
      apiLatencyMs: 0,
    });
    expect(resolveNetwork(undefined, { name: "lab", apiLatencyMs: 3 }).name).toBe("lab");
  });

  it("refuses values out of range, naming the field", () => {
    expect(usageMessage(() => resolveNetwork(undefined, { rttMs: -1 }))).toContain("network.rttMs");
    expect(usageMessage(() => resolveNetwork(undefined, { rttMs: Number.NaN }))).toContain("network.rttMs");
    expect(usageMessage(() => resolveNetwork(undefined, { connBandwidth: 10 }))).toContain(
      "network.connBandwidth",
    );
    expect(usageMessage(() => resolveNetwork(undefined, { connBandwidth: Infinity }))).toContain(
      "network.connBandwidth",
    );
    expect(usageMessage(() => resolveNetwork(undefined, { apiLatencyMs: 60_001 }))).toContain(
      "network.apiLatencyMs",
    );
    expect(usageMessage(() => resolveNetwork("nope"))).toContain("in-region");
  });

  it("shapes connections only for rtt or a cap (API latency alone needs no wrapper)", () => {
    expect(shapesConnections(resolveNetwork("in-region"))).toBe(true);
    expect(shapesConnections(resolveNetwork(undefined, { apiLatencyMs: 10 }))).toBe(false);
    expect(shapesConnections(resolveNetwork(undefined, { connBandwidth: 1_000_000 }))).toBe(true);
    expect(shapesConnections(undefined)).toBe(false);
  });
});

describe("describeNetwork", () => {
  it("states the shape on one line", () => {
    expect(describeNetwork(resolveNetwork("cross-region"))).toBe(
      "cross-region: rtt 60 ms, 30 MB/s per connection each way, API latency 10 ms",
    );
    expect(describeNetwork(resolveNetwork(undefined, { rttMs: 5 }))).toBe(
      "custom: rtt 5 ms, no bandwidth cap, no API latency",
    );
    expect(describeNetwork(resolveNetwork("loopback"))).toBe("loopback: no shaping");
  });
});
