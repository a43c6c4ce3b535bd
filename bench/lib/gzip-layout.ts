import { createCipheriv, createHash } from "node:crypto";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { mkdir, rename } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { writeLayoutImage } from "../../src/bench/layout.js";
import { HashingCounter } from "../../src/manifest/digest.js";

/**
 * OCI layouts whose layers are random bytes inside real gzip streams (stored blocks, level 0):
 * incompressible, fast to make, and gzip from their first bytes, so that no tool recompresses
 * them (skopeo sniffs a layer's magic bytes and gzips one that does not start like gzip, which
 * src/bench/layout.ts's random layers do not). Deterministic for a seed; a new seed gives new blobs.
 */
export interface GzipLayout {
  path: string;
  /** `oci:PATH:bench`. */
  reference: string;
  tag: string;
  manifestDigest: string;
  layers: { digest: string; size: number }[];
  config: { digest: string; size: number };
  /** Sum of the layer sizes (the gzip streams), config excluded. */
  layerBytes: number;
}

const MiB = 1024 * 1024;
const TAG = "bench";

/** A layer of `size` random bytes (before gzip's few bytes of framing) written into `blobs`. */
async function writeLayer(
  blobs: string,
  size: number,
  seed: string,
): Promise<{ digest: string; size: number }> {
  const key = createHash("sha256").update(`ecrx gzip layer ${seed}`).digest();
  const cipher = createCipheriv("aes-256-ctr", key, key.subarray(0, 16));
  const source = new PassThrough();
  const tap = new HashingCounter();
  const temporary = join(blobs, `${key.toString("hex").slice(0, 16)}.tmp`);
  const written = pipeline(source, createGzip({ level: 0 }), tap, createWriteStream(temporary));
  const zeros = Buffer.alloc(4 * MiB);
  for (let left = size; left > 0;) {
    const n = Math.min(zeros.length, left);
    if (!source.write(cipher.update(zeros.subarray(0, n)))) await once(source, "drain");
    left -= n;
  }
  source.end();
  await written;
  const digest = tap.digest;
  await rename(temporary, join(blobs, digest.slice("sha256:".length)));
  return { digest, size: tap.bytes };
}

/** Writes the layout at `path` (created): one gzip layer of about each of `sizes` bytes. */
export async function buildGzipLayout(
  path: string,
  sizes: readonly number[],
  seed: string,
): Promise<GzipLayout> {
  const blobs = join(path, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  const layers = [];
  for (const [i, size] of sizes.entries()) layers.push(await writeLayer(blobs, size, `${seed}/${i}`));
  // The diff_ids are made up: nothing here decompresses the layers.
  const { config, manifest } = await writeLayoutImage(
    path,
    TAG,
    {
      architecture: "amd64",
      os: "linux",
      config: { Labels: { "ecrx.bench.seed": seed } },
      rootfs: {
        type: "layers",
        diff_ids: layers.map(
          (_, i) => `sha256:${createHash("sha256").update(`${seed} diff ${i}`).digest("hex")}`,
        ),
      },
    },
    layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...l })),
  );
  return {
    path,
    reference: `oci:${path}:${TAG}`,
    tag: TAG,
    manifestDigest: manifest.digest,
    layers,
    config,
    layerBytes: layers.reduce((sum, l) => sum + l.size, 0),
  };
}
