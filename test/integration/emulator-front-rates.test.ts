import { CreateRepositoryCommand, PutImageCommand } from "@aws-sdk/client-ecr";
import { describe, expect, it } from "vitest";
import { serve, type ServeOptions } from "../../src/emulator/server.js";
import { ecrClient } from "../helpers/emulator-clients.js";

/** Fires `count` PutImage calls at once; returns how many were throttled. */
async function burstOfPutImage(
  options: ServeOptions,
  count: number,
): Promise<{ throttled: number; other: number; seconds: number }> {
  const server = await serve({ port: 0, ...options });
  try {
    const client = ecrClient(server);
    await client.send(new CreateRepositoryCommand({ repositoryName: "burst" }));
    // The manifests name layers that are not there: each call that gets past the rate limit is
    // answered LayersNotFoundException, which tells it apart from a throttled one.
    const started = performance.now();
    const results = await Promise.allSettled(
      Array.from({ length: count }, (_, i) =>
        client.send(
          new PutImageCommand({
            repositoryName: "burst",
            imageTag: `t${i}`,
            imageManifest: JSON.stringify({
              schemaVersion: 2,
              mediaType: "application/vnd.oci.image.manifest.v1+json",
              config: {
                mediaType: "application/vnd.oci.image.config.v1+json",
                digest: `sha256:${"0".repeat(63)}${i % 10}`,
                size: 2,
              },
              layers: [],
            }),
          }),
        ),
      ),
    );
    const seconds = (performance.now() - started) / 1000;
    const names = results.map((r) => (r.status === "rejected" ? (r.reason as Error).name : "ok"));
    return {
      throttled: names.filter((n) => n === "ThrottlingException").length,
      other: names.filter((n) => n !== "ThrottlingException").length,
      seconds,
    };
  } finally {
    await server.close();
  }
}

describe("request rates", () => {
  it("throttles PutImage beyond ECR's 10 per second", async () => {
    const { throttled, other, seconds } = await burstOfPutImage({}, 30);
    // A burst of 10, plus what refills (10/s) while the 30 requests arrive.
    expect(other).toBeGreaterThanOrEqual(10);
    expect(other).toBeLessThanOrEqual(10 + Math.ceil(10 * seconds));
    expect(throttled).toBe(30 - other);
    expect(throttled).toBeGreaterThan(0);
  });

  it("throttles nothing with rates off", async () => {
    const { throttled, other } = await burstOfPutImage({ rates: "off" }, 30);
    expect(throttled).toBe(0);
    expect(other).toBe(30);
  });
});
