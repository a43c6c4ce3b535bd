import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import pLimit from "p-limit";
import { describe, expect, it } from "vitest";
import { EcrxError } from "../../src/errors.js";
import { MediaType } from "../../src/manifest/media-types.js";
import type { Descriptor, RawManifest } from "../../src/manifest/types.js";
import { transferImage } from "../../src/transfer/engine.js";
import type { TransferEvent } from "../../src/transfer/events.js";
import type {
  BlobToPut,
  ImageDestination,
  ImageSource,
  PositionalRead,
  PositionalSink,
  ProgressFn,
} from "../../src/transports/types.js";

/** In-memory images and a recording destination: the engine's protocol, observed call by call. */
function digestOf(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

function blob(text: string, mediaType: string): { bytes: Buffer; descriptor: Descriptor } {
  const bytes = Buffer.from(text);
  return { bytes, descriptor: { mediaType, digest: digestOf(bytes), size: bytes.length } };
}

function manifestOf(doc: object, mediaType: string): RawManifest {
  const bytes = Buffer.from(JSON.stringify(doc));
  return { bytes, mediaType, digest: digestOf(bytes) };
}

class MemorySource implements ImageSource {
  readonly reference = "memory";
  readonly blobs = new Map<string, Buffer>();
  readonly manifests = new Map<string, RawManifest>();
  constructor(private readonly root: RawManifest) {
    this.manifests.set(root.digest, root);
  }
  async manifest(digest?: string): Promise<RawManifest> {
    const found = this.manifests.get(digest ?? this.root.digest);
    if (!found) throw new EcrxError("NOT_FOUND", `no manifest ${digest}`);
    return found;
  }
  async blob(d: Descriptor): Promise<Readable> {
    const bytes = this.blobs.get(d.digest);
    if (!bytes) throw new EcrxError("NOT_FOUND", `no blob ${d.digest}`);
    return Readable.from([bytes]);
  }
  async close(): Promise<void> {}
}

/** An image of a config and the given layers; returns the source and the descriptors. */
function image(layerTexts: string[], source?: MemorySource) {
  const layers = layerTexts.map((t) => blob(t, MediaType.OciLayerGzip));
  const config = blob(
    JSON.stringify({ architecture: "amd64", os: "linux", layers: layerTexts.length }),
    MediaType.OciConfig,
  );
  const manifest = manifestOf(
    {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: config.descriptor,
      layers: layers.map((l) => l.descriptor),
    },
    MediaType.OciManifest,
  );
  const src = source ?? new MemorySource(manifest);
  src.manifests.set(manifest.digest, manifest);
  for (const b of [config, ...layers]) src.blobs.set(b.descriptor.digest, b.bytes);
  return { source: src, manifest, layers, config };
}

type Behaviour = (blob: BlobToPut, attempt: number) => Promise<void>;

class RecordingDestination implements ImageDestination {
  readonly reference = "recording";
  readonly calls: string[] = [];
  readonly stored = new Map<string, Buffer>();
  readonly attempts = new Map<string, number>();
  committed = false;
  constructor(private readonly behaviour: Behaviour = async () => undefined) {}
  async missing(blobs: Descriptor[]): Promise<Descriptor[]> {
    this.calls.push(`missing ${blobs.length}`);
    return blobs.filter((b) => !this.stored.has(b.digest));
  }
  async putBlob(b: BlobToPut, body: Readable, progress: ProgressFn): Promise<Descriptor> {
    const attempt = (this.attempts.get(b.digest!) ?? 0) + 1;
    this.attempts.set(b.digest!, attempt);
    this.calls.push(`putBlob ${b.digest}`);
    const chunks: Buffer[] = [];
    for await (const chunk of body) {
      chunks.push(chunk as Buffer);
      progress((chunk as Buffer).length);
    }
    await this.behaviour(b, attempt);
    const bytes = Buffer.concat(chunks);
    this.stored.set(digestOf(bytes), bytes);
    return { mediaType: b.mediaType, digest: digestOf(bytes), size: bytes.length };
  }
  /** Takes bytes by position into memory, verified like BlobStaging.putByPosition does. */
  async putBlobByPosition(
    b: BlobToPut,
    fill: (sink: PositionalSink) => Promise<void>,
    progress: ProgressFn,
  ): Promise<Descriptor> {
    const attempt = (this.attempts.get(b.digest!) ?? 0) + 1;
    this.attempts.set(b.digest!, attempt);
    this.calls.push(`putBlobByPosition ${b.digest}`);
    const bytes = Buffer.alloc(b.size);
    await fill({
      write: async (position, chunks) => {
        const piece = Buffer.concat(chunks);
        piece.copy(bytes, position);
        progress(piece.length);
      },
    });
    await this.behaviour(b, attempt);
    if (digestOf(bytes) !== b.digest) throw new EcrxError("INTEGRITY", `digest mismatch for ${b.digest}`);
    this.stored.set(b.digest, bytes);
    return { mediaType: b.mediaType, digest: b.digest, size: bytes.length };
  }
  async putManifest(m: RawManifest, tags: string[]): Promise<void> {
    this.calls.push(`putManifest ${m.digest} [${tags.join(",")}]`);
  }
  async commit(): Promise<void> {
    this.committed = true;
  }
  async close(): Promise<void> {}
}

describe("transferImage", () => {
  it("writes an index's children by digest, then the index under its tags, sending a shared layer once", async () => {
    const shared = "shared base layer";
    const amd = image([shared, "amd64 app"]);
    const arm = image([shared, "arm64 app"], amd.source);
    const index = manifestOf(
      {
        schemaVersion: 2,
        mediaType: MediaType.OciIndex,
        manifests: [
          {
            mediaType: MediaType.OciManifest,
            digest: amd.manifest.digest,
            size: amd.manifest.bytes.length,
            platform: { os: "linux", architecture: "amd64" },
          },
          {
            mediaType: MediaType.OciManifest,
            digest: arm.manifest.digest,
            size: arm.manifest.bytes.length,
            platform: { os: "linux", architecture: "arm64" },
          },
        ],
      },
      MediaType.OciIndex,
    );
    const source = new MemorySource(index);
    for (const [k, v] of amd.source.manifests) source.manifests.set(k, v);
    for (const [k, v] of amd.source.blobs) source.blobs.set(k, v);
    const dest = new RecordingDestination();

    const result = await transferImage(source, dest, { tags: ["v1", "latest"] });

    const sharedDigest = amd.layers[0]!.descriptor.digest;
    expect(dest.calls.filter((c) => c === `putBlob ${sharedDigest}`)).toHaveLength(1);
    const manifestCalls = dest.calls.filter((c) => c.startsWith("putManifest"));
    expect(manifestCalls).toEqual([
      `putManifest ${amd.manifest.digest} []`,
      `putManifest ${arm.manifest.digest} []`,
      `putManifest ${index.digest} [v1,latest]`,
    ]);
    expect(result.digest).toBe(index.digest);
    expect(result.images).toBe(2);
    expect(dest.committed).toBe(true);
  });

  it("skips what the destination has and sends the rest", async () => {
    const { source, layers } = image(["one", "two"]);
    const dest = new RecordingDestination();
    dest.stored.set(layers[0]!.descriptor.digest, layers[0]!.bytes);
    const events: TransferEvent[] = [];
    const result = await transferImage(source, dest, { onEvent: (e) => events.push(e) });
    expect(result.blobsSkipped).toBe(1);
    expect(result.blobsSent).toBe(2); // the config and the second layer
    expect(
      events.filter((e) => e.type === "blob-skipped").map((e) => (e as { digest: string }).digest),
    ).toEqual([layers[0]!.descriptor.digest]);
  });

  it("sends a blob shared by two transfers at once only once with sharedUploads", async () => {
    const a = image(["common layer", "image a"]);
    const b = image(["common layer", "image b"]);
    const dest = new RecordingDestination(() => new Promise((resolve) => setTimeout(resolve, 20)));
    const sharedUploads = new Map<string, Promise<Descriptor>>();
    const limit = pLimit(4);
    await Promise.all([
      transferImage(a.source, dest, { sharedUploads, limit }),
      transferImage(b.source, dest, { sharedUploads, limit }),
    ]);
    expect(dest.attempts.get(a.layers[0]!.descriptor.digest)).toBe(1);
  });

  it("retries a blob that failed with a network error and rolls its progress back", async () => {
    const { source, layers } = image(["flaky layer"]);
    const flaky = layers[0]!.descriptor.digest;
    const dest = new RecordingDestination(async (b, attempt) => {
      if (b.digest === flaky && attempt === 1) throw new EcrxError("NETWORK", "connection reset");
    });
    const events: TransferEvent[] = [];
    await transferImage(source, dest, { onEvent: (e) => events.push(e), blobAttempts: 2 });
    const retry = events.find((e) => e.type === "blob-retry");
    // The failed attempt had counted the whole layer: all of it is taken back.
    expect(retry).toMatchObject({ attempt: 2, rolledBack: layers[0]!.bytes.length });
    expect(dest.attempts.get(flaky)).toBe(2);
  }, 30_000);

  it("stops the other blobs at the first failure and reports that failure, writing no manifest", async () => {
    const { source, layers } = image(["bad", "slow 1", "slow 2", "slow 3"]);
    const bad = layers[0]!.descriptor.digest;
    const dest = new RecordingDestination(async (b) => {
      if (b.digest === bad) throw new EcrxError("CONFLICT", "refused");
      await new Promise((resolve) => setTimeout(resolve, 50));
    });
    await expect(transferImage(source, dest, { concurrency: 1 })).rejects.toMatchObject({ code: "CONFLICT" });
    // With one slot, the blobs queued behind the failed one never started.
    expect(dest.calls.filter((c) => c.startsWith("putBlob")).length).toBeLessThan(5);
    expect(dest.calls.some((c) => c.startsWith("putManifest"))).toBe(false);
    expect(dest.committed).toBe(false);
  });

  it("refuses a source blob whose bytes do not match its digest, before any manifest", async () => {
    const { source, layers } = image(["honest"]);
    source.blobs.set(layers[0]!.descriptor.digest, Buffer.from("dishonest!"));
    const dest = new RecordingDestination();
    await expect(transferImage(source, dest)).rejects.toMatchObject({ code: "INTEGRITY" });
    expect(dest.calls.some((c) => c.startsWith("putManifest"))).toBe(false);
  });

  it("sends a blob the source reads by position to a destination that writes by position, and streams the rest", async () => {
    const { source, layers, config } = image(["ranged layer, read in two halves", "streamed layer"]);
    const ranged = layers[0]!;
    const offers: string[] = [];
    const positional: ImageSource = Object.assign(source, {
      positionalBlob(d: Descriptor): PositionalRead | undefined {
        offers.push(d.digest);
        if (d.digest !== ranged.descriptor.digest) return undefined;
        return async (sink: PositionalSink) => {
          const half = 10;
          await sink.write(half, [ranged.bytes.subarray(half)]);
          await sink.write(0, [ranged.bytes.subarray(0, half)]);
        };
      },
    });
    const dest = new RecordingDestination();
    const events: TransferEvent[] = [];
    const result = await transferImage(positional, dest, { onEvent: (e) => events.push(e) });
    expect(result.blobsSent).toBe(3);
    expect(dest.calls).toContain(`putBlobByPosition ${ranged.descriptor.digest}`);
    expect(dest.calls).toContain(`putBlob ${layers[1]!.descriptor.digest}`);
    // The config is already in memory (read to validate the image): never asked for by position.
    expect(offers).not.toContain(config.descriptor.digest);
    expect(dest.stored.get(ranged.descriptor.digest)).toEqual(ranged.bytes);
    const progress = events
      .filter((e) => e.type === "blob-progress" && e.id === ranged.descriptor.digest)
      .reduce((sum, e) => sum + (e as { bytes: number }).bytes, 0);
    expect(progress).toBe(ranged.bytes.length);
  });

  it("retries a blob read by position whole after a network error, and stops on wrong bytes", async () => {
    const { source, layers } = image(["flaky ranged layer"]);
    const layer = layers[0]!;
    let reads = 0;
    Object.assign(source, {
      positionalBlob: (): PositionalRead => async (sink) => {
        reads++;
        await sink.write(0, [layer.bytes.subarray(0, 5)]);
        if (reads === 1) throw new EcrxError("NETWORK", "connection reset");
        await sink.write(5, [layer.bytes.subarray(5)]);
      },
    });
    const events: TransferEvent[] = [];
    await transferImage(source, new RecordingDestination(), {
      onEvent: (e) => events.push(e),
      blobAttempts: 2,
    });
    expect(reads).toBe(2);
    expect(events.find((e) => e.type === "blob-retry")).toMatchObject({ attempt: 2, rolledBack: 5 });

    Object.assign(source, {
      positionalBlob: (): PositionalRead => (sink) =>
        sink.write(0, [Buffer.from("x".repeat(layer.bytes.length))]),
    });
    const dest = new RecordingDestination();
    await expect(transferImage(source, dest)).rejects.toMatchObject({ code: "INTEGRITY" });
    expect(dest.calls.some((c) => c.startsWith("putManifest"))).toBe(false);
  }, 30_000);
});
