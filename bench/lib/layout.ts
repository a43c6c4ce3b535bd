import { createHash, createCipheriv, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { once } from "node:events";

/**
 * OCI layouts of "pre-compressed" layers for throughput benchmarks: each layer is incompressible
 * bytes (AES-CTR keystream, generated at GB/s and streamed to disk) typed as gzip, as a registry
 * sees an already-compressed image. Every call makes new bytes, so a push always finds its blobs
 * missing.
 */
export interface BenchLayout {
  path: string;
  layers: { digest: string; size: number; file: string }[];
  manifestDigest: string;
  bytes: number;
}

async function writeRandomBlob(
  dir: string,
  size: number,
): Promise<{ digest: string; size: number; file: string }> {
  const cipher = createCipheriv("aes-128-ctr", randomBytes(16), randomBytes(16));
  const hash = createHash("sha256");
  const temporary = join(dir, `tmp-${randomBytes(6).toString("hex")}`);
  const out = createWriteStream(temporary);
  const zeros = Buffer.alloc(4 * 1024 * 1024);
  for (let written = 0; written < size;) {
    const n = Math.min(zeros.length, size - written);
    const chunk = cipher.update(zeros.subarray(0, n));
    hash.update(chunk);
    if (!out.write(chunk)) await once(out, "drain");
    written += n;
  }
  out.end();
  await once(out, "finish");
  const hex = hash.digest("hex");
  const file = join(dir, hex);
  await rename(temporary, file);
  return { digest: `sha256:${hex}`, size, file };
}

export async function buildBenchLayout(path: string, layerSizes: number[]): Promise<BenchLayout> {
  const blobs = join(path, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  const layers = [];
  for (const size of layerSizes) layers.push(await writeRandomBlob(blobs, size));
  const putJson = async (doc: unknown) => {
    const bytes = Buffer.from(JSON.stringify(doc));
    const hex = createHash("sha256").update(bytes).digest("hex");
    await writeFile(join(blobs, hex), bytes);
    return { digest: `sha256:${hex}`, size: bytes.length };
  };
  const config = await putJson({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: layers.map(() => `sha256:${randomBytes(32).toString("hex")}`) },
  });
  const manifest = await putJson({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: layers.map((l) => ({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: l.digest,
      size: l.size,
    })),
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
          annotations: { "org.opencontainers.image.ref.name": "bench" },
        },
      ],
    }),
  );
  return { path, layers, manifestDigest: manifest.digest, bytes: layerSizes.reduce((a, b) => a + b, 0) };
}
