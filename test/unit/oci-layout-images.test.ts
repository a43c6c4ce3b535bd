import { stat } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { openOciLayoutSource } from "../../src/transports/oci-layout/source.js";
import { readWholeImage } from "../helpers/copy.js";
import { useScratch } from "../helpers/scratch.js";
import { buildImage, KiB, layersOf, MiB, splitSize } from "../helpers/images.js";

const { fresh } = useScratch("images-test");

describe("test image builders", () => {
  it("are deterministic, and seeds tell images apart", async () => {
    const options = {
      format: "oci-archive" as const,
      layers: [
        { size: 100 * KiB, compression: "zstd" as const },
        { size: 3 * KiB, content: "random" as const },
      ],
    };
    const a = await buildImage({ ...options, dir: fresh() });
    const b = await buildImage({ ...options, dir: fresh() });
    const c = await buildImage({ ...options, dir: fresh(), seed: "other" });
    expect(b.root.digest).toBe(a.root.digest);
    expect(c.root.digest).not.toBe(a.root.digest);
  });

  it("make compressible and incompressible content", async () => {
    const image = await buildImage({
      format: "oci-layout",
      dir: fresh(),
      layers: [
        { size: 1 * MiB, compression: "gzip" },
        { size: 1 * MiB, compression: "gzip", content: "random" },
      ],
    });
    const [text, random] = image.manifests[0]!.layers;
    expect(text!.size).toBeLessThan(text!.uncompressedSize / 2);
    expect(random!.size).toBeGreaterThan(random!.uncompressedSize * 0.99);
  });

  it("split a total size and make many small layers", async () => {
    expect(splitSize(10, 3).map((l) => l.size)).toEqual([4, 3, 3]);
    const image = await buildImage({
      format: "oci-layout",
      dir: fresh(),
      layers: layersOf(20, { size: 100, compression: "none" }),
    });
    expect(new Set(image.manifests[0]!.layers.map((l) => l.digest)).size).toBe(20);
    const source = await openOciLayoutSource(image.path);
    expect(await readWholeImage(source)).toBeGreaterThan(20 * 1024);
    await source.close();
  });

  it("stream large layers without holding them in memory", async () => {
    const before = process.memoryUsage().rss;
    const image = await buildImage({
      format: "oci-layout",
      dir: fresh(),
      layers: [{ size: 256 * MiB, compression: "none", fileSize: 64 * MiB }],
    });
    const layer = image.manifests[0]!.layers[0]!;
    expect(layer.size).toBeGreaterThan(256 * MiB);
    expect((await stat(join(image.path, "blobs", "sha256", layer.digest.slice(7)))).size).toBe(layer.size);
    expect(process.memoryUsage().rss - before).toBeLessThan(128 * MiB);
  });
});
