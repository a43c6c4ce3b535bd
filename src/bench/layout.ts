import { createCipheriv, createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { once } from "node:events";
import { mkdir, rename, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { writeSampleLayer } from "../demo/sample-image.js";

/**
 * OCI layouts of generated layers for throughput benchmarks, deterministic for a seed:
 * - `random`: incompressible bytes (an AES-CTR keystream, generated at GB/s) typed as gzip, as a
 *   registry sees an already-compressed image; pushed as they are.
 * - `compressible`: uncompressed tars of text-like files (the demo's generator; they gzip about
 *   3-4x, like a real root file system), which a push compresses on the way. Each layer is a little
 *   larger than asked: the tar headers come on top of the file content.
 * A new seed gives new blobs, so that a push finds all of them missing.
 */
export type BenchContent = "random" | "compressible";

export interface BenchLayer {
  digest: string;
  size: number;
  file: string;
}

export interface BenchLayout {
  path: string;
  /** `oci:PATH:bench`, the source reference of the image. */
  reference: string;
  layers: BenchLayer[];
  manifestDigest: string;
  /** Sum of the layer sizes. */
  bytes: number;
}

const TAG = "bench";
const CHUNK = 4 * 1024 * 1024;

function seedBytes(label: string, seed: number, index: number): Buffer {
  return createHash("sha256").update(`ecrx bench ${label} ${seed} ${index}`).digest();
}

async function writeRandomLayer(file: string, size: number, seed: number, index: number): Promise<string> {
  const cipher = createCipheriv(
    "aes-128-ctr",
    seedBytes("key", seed, index).subarray(0, 16),
    Buffer.alloc(16),
  );
  const hash = createHash("sha256");
  const out = createWriteStream(file);
  const zeros = Buffer.alloc(CHUNK);
  for (let written = 0; written < size;) {
    const n = Math.min(CHUNK, size - written);
    const chunk = cipher.update(zeros.subarray(0, n));
    hash.update(chunk);
    if (!out.write(chunk)) await once(out, "drain");
    written += n;
  }
  out.end();
  await once(out, "finish");
  return `sha256:${hash.digest("hex")}`;
}

/** Writes the layout at `path` (created); `layerSizes` are bytes of each layer (file content for `compressible`). */
export async function buildBenchLayout(
  path: string,
  layerSizes: readonly number[],
  options: { content: BenchContent; seed: number },
): Promise<BenchLayout> {
  const blobs = join(path, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  const layers: BenchLayer[] = [];
  const diffIds: string[] = [];
  for (const [index, size] of layerSizes.entries()) {
    const temporary = join(blobs, `layer-${index}.tmp`);
    let digest: string;
    if (options.content === "random") {
      digest = await writeRandomLayer(temporary, size, options.seed, index);
      // Nothing decompresses these bytes, so their diff_id only has to be unique to the seed.
      diffIds.push(`sha256:${seedBytes("diff", options.seed, index).toString("hex")}`);
    } else {
      digest = await writeSampleLayer(
        temporary,
        { size, content: "compressible" },
        seedBytes("sample", options.seed, index).readUInt32LE(0),
      );
      diffIds.push(digest);
    }
    const file = join(blobs, digest.slice("sha256:".length));
    await rename(temporary, file);
    layers.push({ digest, size: (await stat(file)).size, file });
  }
  const layerMediaType =
    options.content === "random"
      ? "application/vnd.oci.image.layer.v1.tar+gzip"
      : "application/vnd.oci.image.layer.v1.tar";
  const { manifest } = await writeLayoutImage(
    path,
    TAG,
    {
      architecture: "amd64",
      os: "linux",
      config: { Labels: { "ecrx.bench.seed": String(options.seed) } },
      rootfs: { type: "layers", diff_ids: diffIds },
    },
    layers.map((l) => ({ mediaType: layerMediaType, digest: l.digest, size: l.size })),
  );
  return {
    path,
    reference: `oci:${path}:${TAG}`,
    layers,
    manifestDigest: manifest.digest,
    bytes: layers.reduce((sum, l) => sum + l.size, 0),
  };
}

/**
 * Finishes an OCI layout at `path` whose layer blobs are already in blobs/sha256: writes the
 * config blob (`config`, as JSON), an image manifest of the config and `layers`, `oci-layout`, and
 * index.json naming the manifest `tag`. Returns the config's and the manifest's descriptors.
 */
export async function writeLayoutImage(
  path: string,
  tag: string,
  config: unknown,
  layers: readonly { mediaType: string; digest: string; size: number }[],
): Promise<{ config: { digest: string; size: number }; manifest: { digest: string; size: number } }> {
  const blobs = join(path, "blobs", "sha256");
  const putJson = async (doc: unknown) => {
    const bytes = Buffer.from(JSON.stringify(doc));
    const hex = createHash("sha256").update(bytes).digest("hex");
    await writeFile(join(blobs, hex), bytes);
    return { digest: `sha256:${hex}`, size: bytes.length };
  };
  const configBlob = await putJson(config);
  const manifest = await putJson({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...configBlob },
    layers,
  });
  await writeFile(join(path, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(path, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifest,
          annotations: { "org.opencontainers.image.ref.name": tag },
        },
      ],
    }),
  );
  return { config: configBlob, manifest };
}
