import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { Writable } from "node:stream";
import tar from "tar-stream";

/**
 * A sample image for the demo and the benchmarks, generated without Docker: a `docker save`
 * tarball in the classic layout (manifest.json, <id>.json, <id>/layer.tar) with uncompressed
 * layers, as `docker save` writes them. Content is seeded and deterministic: "compressible" is
 * text-like source files and logs (compresses about 3-4x, like a real rootfs), "random" does not
 * compress at all.
 */
export interface SampleLayer {
  /** Approximate bytes of file content in the layer. */
  size: number;
  content?: "compressible" | "random";
}

export interface SampleImage {
  path: string;
  configDigest: string;
  diffIds: string[];
  bytes: number;
}

/** xorshift32: fast, seedable, good enough for test data (never for anything secret). */
export class SeededRandom {
  private state: number;
  constructor(seed: number) {
    // Spread small seeds over the word and keep the state non-zero, which xorshift requires.
    this.state = Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) >>> 0 || 0x6d2b79f5;
  }
  nextU32(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }
  /** An integer in [0, max). */
  int(max: number): number {
    return this.nextU32() % max;
  }
  /** Fills `buffer` with pseudo-random bytes. */
  fill(buffer: Buffer): Buffer {
    let i = 0;
    for (; i + 4 <= buffer.length; i += 4) buffer.writeUInt32LE(this.nextU32(), i);
    for (; i < buffer.length; i++) buffer[i] = this.nextU32() & 0xff;
    return buffer;
  }
}

const WORDS = (
  "the of and to in is that for it as with was on be by this are at from or an have not which " +
  "function return const let var if else while for import export class new this null true false " +
  "error warn info debug request response server client config image layer digest manifest upload " +
  "usr lib bin share include local etc var opt python3 node java libc so x86_64 aarch64 linux"
).split(" ");

/** Text-like content: words, identifiers and numbers in lines, as in sources, configs and logs. */
function compressibleChunk(random: SeededRandom, size: number): Buffer {
  const parts: string[] = [];
  let length = 0;
  while (length < size) {
    const words = 4 + random.int(10);
    let line = " ".repeat(random.int(4) * 2);
    for (let w = 0; w < words; w++) {
      const word = WORDS[random.int(WORDS.length)]!;
      line += w === 0 ? word : random.int(7) === 0 ? `_${random.int(100000)}` : ` ${word}`;
    }
    line += "\n";
    parts.push(line);
    length += line.length;
  }
  return Buffer.from(parts.join("")).subarray(0, size);
}

/** Writes one layer tar of ~`size` content bytes to `path`; returns its sha256 (the diff_id). */
export async function writeSampleLayer(path: string, layer: SampleLayer, seed: number): Promise<string> {
  const random = new SeededRandom(seed);
  const pack = tar.pack();
  const hash = createHash("sha256");
  const out = createWriteStream(path);
  const hashing = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      if (out.write(chunk)) callback();
      else out.once("drain", () => callback());
    },
    final(callback) {
      out.end(callback);
    },
  });
  const done = pipeline(pack, hashing);
  const fileSize = layer.content === "random" ? 4 * 1024 * 1024 : 256 * 1024;
  let written = 0;
  for (let file = 0; written < layer.size; file++) {
    const size = Math.min(fileSize, layer.size - written);
    const data =
      layer.content === "random" ? random.fill(Buffer.allocUnsafe(size)) : compressibleChunk(random, size);
    await new Promise<void>((resolve, reject) => {
      pack.entry(
        {
          name: `opt/sample/${seed}/file-${file}.${layer.content === "random" ? "bin" : "txt"}`,
          size,
          mtime: new Date(0),
          mode: 0o644,
        },
        data,
        (err) => (err ? reject(err) : resolve()),
      );
    });
    written += size;
  }
  pack.finalize();
  await done;
  return `sha256:${hash.digest("hex")}`;
}

/** Builds the sample docker-archive at `path` (a work folder `path + ".work"` is used and removed). */
export async function buildSampleImage(path: string, layers: SampleLayer[], seed = 1): Promise<SampleImage> {
  const work = `${path}.work`;
  await mkdir(work, { recursive: true });
  try {
    const diffIds: string[] = [];
    const layerFiles: string[] = [];
    for (const [i, layer] of layers.entries()) {
      const file = join(work, `layer-${i}.tar`);
      diffIds.push(await writeSampleLayer(file, layer, seed * 1000 + i));
      layerFiles.push(file);
    }
    const config = Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        created: "2026-01-01T00:00:00Z",
        config: {
          Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
          Cmd: ["/bin/sh"],
          Labels: { "org.opencontainers.image.title": "ecrx sample" },
        },
        rootfs: { type: "layers", diff_ids: diffIds },
        history: layers.map((_, i) => ({
          created: "2026-01-01T00:00:00Z",
          created_by: `ecrx sample layer ${i}`,
        })),
      }),
    );
    const configHex = createHash("sha256").update(config).digest("hex");
    const layerNames = diffIds.map((d) => `${d.slice(7)}/layer.tar`);
    const manifest = Buffer.from(
      JSON.stringify([{ Config: `${configHex}.json`, RepoTags: ["ecrx-sample:latest"], Layers: layerNames }]),
    );
    const pack = tar.pack();
    const done = pipeline(pack, createWriteStream(path));
    const add = (name: string, data: Buffer) =>
      new Promise<void>((resolve, reject) =>
        pack.entry({ name, size: data.length, mtime: new Date(0) }, data, (err) =>
          err ? reject(err) : resolve(),
        ),
      );
    await add(`${configHex}.json`, config);
    for (const [i, file] of layerFiles.entries()) {
      const { size } = await stat(file);
      const entry = pack.entry({ name: layerNames[i]!, size, mtime: new Date(0) });
      await pipeline(createReadStream(file), entry);
    }
    await add("manifest.json", manifest);
    pack.finalize();
    await done;
    const { size } = await stat(path);
    return { path, configDigest: `sha256:${configHex}`, diffIds, bytes: size };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
