import { describe, expect, it } from "vitest";
import { describeServer, serveOptionsFromFlags } from "../../src/cli/commands/serve.js";
import type { RunningServer } from "../../src/emulator/server.js";
import { EcrxError } from "../../src/errors.js";

const DEFAULTS = {
  host: "127.0.0.1",
  port: "5000",
  region: "us-east-1",
  account: "000000000000",
  accessKeyId: "test",
  secretAccessKey: "test",
  rates: "aws",
};

function usageMessage(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(EcrxError);
    expect((err as EcrxError).code).toBe("USAGE");
    return (err as EcrxError).message;
  }
  throw new Error("accepted");
}

describe("ecrx serve flags", () => {
  it("map to ServeOptions", () => {
    expect(
      serveOptionsFromFlags({
        ...DEFAULTS,
        port: "0",
        data: "/d",
        faults: "*:latency=5",
        faultSeed: "42",
        rates: "off",
      }),
    ).toEqual({
      host: "127.0.0.1",
      port: 0,
      dataDir: "/d",
      region: "us-east-1",
      accountId: "000000000000",
      accessKeyId: "test",
      secretAccessKey: "test",
      rates: "off",
      faults: "*:latency=5",
      faultSeed: 42,
    });
  });

  it("map --network and its overrides to ServeOptions.network", () => {
    expect(serveOptionsFromFlags({ ...DEFAULTS, network: "cross-region" }).network).toEqual({
      name: "cross-region",
      rttMs: 60,
      connBandwidth: 30_000_000,
      apiLatencyMs: 10,
    });
    expect(
      serveOptionsFromFlags({
        ...DEFAULTS,
        network: "far",
        rtt: "200",
        connBandwidth: "320Mbit/s",
        apiLatency: "0",
      }).network,
    ).toEqual({ name: "far (adjusted)", rttMs: 200, connBandwidth: 40_000_000, apiLatencyMs: 0 });
    expect(serveOptionsFromFlags({ ...DEFAULTS, connBandwidth: "4MiB/s" }).network).toEqual({
      name: "custom",
      rttMs: 0,
      connBandwidth: 4 * 1024 * 1024,
      apiLatencyMs: 0,
    });
    // No shaping at all: no network option, and the server runs as without the flags.
    expect(serveOptionsFromFlags({ ...DEFAULTS, network: "loopback" })).not.toHaveProperty("network");
    expect(
      serveOptionsFromFlags({ ...DEFAULTS, network: "far", rtt: "0", connBandwidth: "0", apiLatency: "0" }),
    ).not.toHaveProperty("network");
  });

  it("refuse bad network values with USAGE, naming the flag", () => {
    const unknown = usageMessage(() => serveOptionsFromFlags({ ...DEFAULTS, network: "moon" }));
    expect(unknown).toContain("in-region, cross-region, far, loopback");
    expect(usageMessage(() => serveOptionsFromFlags({ ...DEFAULTS, rtt: "fast" }))).toContain("--rtt");
    expect(usageMessage(() => serveOptionsFromFlags({ ...DEFAULTS, rtt: "20000" }))).toContain("--rtt");
    expect(usageMessage(() => serveOptionsFromFlags({ ...DEFAULTS, apiLatency: "-3" }))).toContain(
      "--api-latency",
    );
    expect(
      usageMessage(() => serveOptionsFromFlags({ ...DEFAULTS, connBandwidth: "40 MB per s" })),
    ).toContain("--conn-bandwidth");
  });

  it("refuse bad values with USAGE", () => {
    expect(usageMessage(() => serveOptionsFromFlags({ ...DEFAULTS, port: "http" }))).toContain("--port");
    expect(usageMessage(() => serveOptionsFromFlags({ ...DEFAULTS, port: "70000" }))).toContain("0..65535");
    expect(usageMessage(() => serveOptionsFromFlags({ ...DEFAULTS, rates: "fast" }))).toContain("--rates");
    expect(usageMessage(() => serveOptionsFromFlags({ ...DEFAULTS, faultSeed: "-1" }))).toContain(
      "--fault-seed",
    );
  });
});

describe("the serve banner", () => {
  it("prints the endpoint, data dir, registry host and pasteable exports", () => {
    const server = {
      url: "http://127.0.0.1:5000",
      dataDir: "/tmp/x",
      accountId: "000000000000",
      region: "us-east-1",
      registryHost: "000000000000.dkr.ecr.us-east-1.localhost:5000",
      publicRegistryAlias: "ecrx",
      faultSeed: 9,
      env: { AWS_ENDPOINT_URL_ECR: "http://127.0.0.1:5000", AWS_SECRET_ACCESS_KEY: "it's secret" },
    } as unknown as RunningServer;
    const text = describeServer(server, { temporaryData: true, faults: "*:error=0.1" });
    expect(text).toContain("http://127.0.0.1:5000");
    expect(text).toContain("/tmp/x (temporary, removed on exit)");
    expect(text).toContain("000000000000.dkr.ecr.us-east-1.localhost:5000/<repository>:<tag>");
    expect(text).toContain("--fault-seed 9");
    expect(text).toContain("export AWS_ENDPOINT_URL_ECR=http://127.0.0.1:5000\n");
    expect(text).toContain("export AWS_SECRET_ACCESS_KEY='it'\\''s secret'\n");
    expect(text).not.toContain("network:");
  });

  it("states the network when the server emulates one", () => {
    const server = {
      url: "http://127.0.0.1:5000",
      dataDir: "/tmp/x",
      accountId: "000000000000",
      region: "us-east-1",
      registryHost: "000000000000.dkr.ecr.us-east-1.localhost:5000",
      publicRegistryAlias: "ecrx",
      faultSeed: 9,
      network: { name: "cross-region", rttMs: 60, connBandwidth: 30_000_000, apiLatencyMs: 10 },
      env: {},
    } as unknown as RunningServer;
    expect(describeServer(server, { temporaryData: false })).toContain(
      "\n  network:           cross-region: rtt 60 ms, 30 MB/s per connection each way, API latency 10 ms\n",
    );
  });
});
