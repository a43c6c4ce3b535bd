import { readdir, readFile, symlink, truncate, writeFile, unlink, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { beforeAll, describe, expect, it } from "vitest";
import { sha256Digest } from "../../src/manifest/digest.js";
import { MediaType } from "../../src/manifest/media-types.js";
import type { ImageIndex } from "../../src/manifest/types.js";
import {
  createOciArchiveDestination,
  createOciLayoutDestination,
} from "../../src/transports/oci-layout/destination.js";
import { openOciArchiveSource, openOciLayoutSource } from "../../src/transports/oci-layout/source.js";
import { writeTar } from "../../src/util/tar-write.js";
import { copyImage, readWholeImage } from "../helpers/copy.js";
import { useScratch } from "../helpers/scratch.js";
import { expectEcrxError } from "../helpers/expect-error.js";
import { buildImage, KiB, MiB, type BuiltImage } from "../helpers/images.js";
import { requireTool, tool } from "../helpers/tools.js";

const { fresh } = useScratch("oci-test");

function blobFile(layout: string, digest: string): string {
  return join(layout, "blobs", "sha256", digest.slice(7));
}

describe("OCI layout source", () => {
  let image: BuiltImage;
  beforeAll(async () => {
    image = await buildImage({
      format: "oci-layout",
      dir: fresh(),
      tag: "v1",
      layers: [
        { size: 2 * MiB, compression: "gzip" },
        { size: 10 * KiB, compression: "zstd", content: "random" },
        { size: 0, compression: "none" },
      ],
    });
  });

  it("serves the tagged manifest verbatim and every blob with the right bytes", async () => {
    const source = await openOciLayoutSource(image.path, "v1");
    try {
      const root = await source.manifest();
      expect(root.digest).toBe(image.root.digest);
      expect(root.bytes.equals(image.root.bytes)).toBe(true);
      expect(root.mediaType).toBe(MediaType.OciManifest);
      expect(await readWholeImage(source)).toBe(
        image.manifests[0]!.config.size + image.manifests[0]!.layers.reduce((s, l) => s + l.size, 0),
      );
    } finally {
      await source.close();
    }
  });

  it("serves byte ranges", async () => {
    const source = await openOciLayoutSource(image.path);
    const layer = image.manifests[0]!.layers[0]!;
    const whole = await readFile(blobFile(image.path, layer.digest));
    const part = await buffer(await source.blob(layer, { start: 100, end: 1123 }));
    expect(part.equals(whole.subarray(100, 1124))).toBe(true);
    await source.close();
  });

  it("reads a multi-platform index and its children", async () => {
    const multi = await buildImage({
      format: "oci-layout",
      dir: fresh(),
      platforms: ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"],
    });
    const source = await openOciLayoutSource(multi.path);
    const root = await source.manifest();
    expect(root.mediaType).toBe(MediaType.OciIndex);
    expect(root.digest).toBe(multi.root.digest);
    const child = await source.manifest(multi.manifests[1]!.digest);
    expect(child.bytes.equals(multi.manifests[1]!.bytes)).toBe(true);
    expect(await readWholeImage(source)).toBeGreaterThan(0);
    await source.close();
  });

  it("chooses by tag, and lists the tags when none or an unknown one is given", async () => {
    const layout = fresh();
    const a = await buildImage({ format: "oci-layout", dir: join(layout, "a"), tag: "a", seed: "a" });
    const b = await buildImage({ format: "oci-layout", dir: join(layout, "b"), tag: "b", seed: "b" });
    const target = join(layout, "both");
    await copyImage(await openOciLayoutSource(a.path), await createOciLayoutDestination(target, ["a"]));
    await copyImage(await openOciLayoutSource(b.path), await createOciLayoutDestination(target, ["b"]));
    const source = await openOciLayoutSource(target, "b");
    expect((await source.manifest()).digest).toBe(b.root.digest);
    await source.close();
    await expectEcrxError(
      openOciLayoutSource(target),
      "INVALID_INPUT",
      /several images and no tag given; it holds a, b/,
    );
    await expectEcrxError(
      openOciLayoutSource(target, "c"),
      "INVALID_INPUT",
      /no image named c; it holds a, b/,
    );
  });

  it("rejects what is not a layout", async () => {
    const empty = fresh();
    await mkdir(empty);
    await expectEcrxError(openOciLayoutSource(empty), "INVALID_INPUT", /"oci-layout" is missing/);
    await expectEcrxError(openOciLayoutSource(join(empty, "nope")), "INVALID_INPUT", /is not a folder/);
  });
});

describe("OCI layout source: bad layouts", () => {
  async function corrupt(change: (image: BuiltImage) => Promise<void>): Promise<BuiltImage> {
    const image = await buildImage({ format: "oci-layout", dir: fresh(), layers: [{ size: 8 * KiB }] });
    await change(image);
    return image;
  }

  it("reports a missing layer before anything is read", async () => {
    const image = await corrupt((i) => unlink(blobFile(i.path, i.manifests[0]!.layers[0]!.digest)));
    await expectEcrxError(
      openOciLayoutSource(image.path),
      "INVALID_INPUT",
      /layer sha256:[0-9a-f]+ is missing/,
    );
  });

  it("reports a layer of the wrong size", async () => {
    const image = await corrupt((i) => truncate(blobFile(i.path, i.manifests[0]!.layers[0]!.digest), 10));
    await expectEcrxError(openOciLayoutSource(image.path), "INVALID_INPUT", /is 10 bytes, the manifest says/);
  });

  it("reports a manifest or config whose bytes do not match the digest", async () => {
    const image = await corrupt(async (i) => {
      const file = blobFile(i.path, i.manifests[0]!.config.digest);
      const bytes = await readFile(file);
      bytes[bytes.length - 2] = bytes[bytes.length - 2]! ^ 1;
      await writeFile(file, bytes);
    });
    await expectEcrxError(openOciLayoutSource(image.path), "INTEGRITY", /config sha256:.*digest mismatch/);
    const manifestChanged = await corrupt(async (i) => {
      const file = blobFile(i.path, i.root.digest);
      await writeFile(
        file,
        Buffer.from(JSON.stringify({ ...JSON.parse(i.root.bytes.toString()), annotations: { x: "y" } })),
      );
    });
    await expectEcrxError(openOciLayoutSource(manifestChanged.path), "INTEGRITY", /manifest sha256:/);
  });

  it("refuses a blob symlink that leaves the layout", async () => {
    const image = await corrupt(async (i) => {
      const file = blobFile(i.path, i.manifests[0]!.layers[0]!.digest);
      const outside = fresh("outside");
      await writeFile(outside, await readFile(file));
      await unlink(file);
      await symlink(outside, file);
    });
    await expectEcrxError(openOciLayoutSource(image.path), "INVALID_INPUT", /links outside the folder/);
  });

  it("follows a blob symlink that stays inside the layout", async () => {
    const image = await corrupt(async (i) => {
      const file = blobFile(i.path, i.manifests[0]!.layers[0]!.digest);
      await writeFile(join(i.path, "kept"), await readFile(file));
      await unlink(file);
      await symlink("../../kept", file);
    });
    const source = await openOciLayoutSource(image.path);
    expect(await readWholeImage(source)).toBeGreaterThan(0);
    await source.close();
  });

  it("refuses an unknown manifest media type", async () => {
    const image = await corrupt(async (i) => {
      const bytes = Buffer.from(
        JSON.stringify({
          ...JSON.parse(i.root.bytes.toString()),
          mediaType: "application/vnd.example.thing+json",
        }),
      );
      const digest = sha256Digest(bytes);
      await writeFile(blobFile(i.path, digest), bytes);
      await writeFile(
        join(i.path, "index.json"),
        JSON.stringify({
          schemaVersion: 2,
          manifests: [{ mediaType: "application/vnd.example.thing+json", digest, size: bytes.length }],
        }),
      );
    });
    await expectEcrxError(
      openOciLayoutSource(image.path),
      "UNSUPPORTED",
      /unsupported media type "application\/vnd.example.thing\+json"/,
    );
  });

  it("refuses an index that lists itself (its bytes cannot hash to their own name)", async () => {
    const image = await corrupt(async (i) => {
      const fake = `sha256:${"ab".repeat(32)}`;
      const bytes = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.OciIndex,
          manifests: [{ mediaType: MediaType.OciIndex, digest: fake, size: 200 }],
        }),
      );
      await writeFile(blobFile(i.path, fake), bytes);
      await writeFile(
        join(i.path, "index.json"),
        JSON.stringify({
          schemaVersion: 2,
          manifests: [{ mediaType: MediaType.OciIndex, digest: fake, size: bytes.length }],
        }),
      );
    });
    await expectEcrxError(openOciLayoutSource(image.path), "INTEGRITY", /digest mismatch/);
  });

  it("refuses an unsupported layout version and a broken index.json", async () => {
    const version = await corrupt((i) =>
      writeFile(join(i.path, "oci-layout"), '{"imageLayoutVersion":"2.0.0"}'),
    );
    await expectEcrxError(openOciLayoutSource(version.path), "UNSUPPORTED", /oci-layout version "2.0.0"/);
    const broken = await corrupt((i) => writeFile(join(i.path, "index.json"), "{"));
    await expectEcrxError(openOciLayoutSource(broken.path), "INVALID_INPUT", /index.json is not valid JSON/);
  });
});

describe("OCI archive source", () => {
  it("reads an archive built by the helpers, members in place", async () => {
    const image = await buildImage({
      format: "oci-archive",
      dir: fresh(),
      platforms: ["linux/amd64", "linux/arm64"],
      layers: [{ size: 300 * KiB, compression: "zstd" }],
    });
    const source = await openOciArchiveSource(image.path, "latest");
    expect((await source.manifest()).digest).toBe(image.root.digest);
    const blobBytes = image.manifests
      .flatMap((m) => [m.config, ...m.layers])
      .reduce((sum, d) => sum + d.size, 0);
    expect(await readWholeImage(source)).toBe(blobBytes);
    await source.close();
  });

  it("rejects truncated archives, non-archives, and unsafe member names", async () => {
    const image = await buildImage({
      format: "oci-archive",
      dir: fresh(),
      layers: [{ size: 100 * KiB, content: "random" }],
    });
    const cut = fresh("cut.tar");
    await writeFile(cut, (await readFile(image.path)).subarray(0, 50 * KiB));
    await expectEcrxError(openOciArchiveSource(cut), "INVALID_INPUT", /is truncated/);

    const text = fresh("text.tar");
    await writeFile(text, "this is not a tar archive at all".repeat(40));
    await expectEcrxError(openOciArchiveSource(text), "INVALID_INPUT", /is not a tar archive/);

    for (const [name, message] of [
      ["../evil", /points outside the archive/],
      ["/etc/evil", /is an absolute path/],
      ["blobs/../../evil", /points outside the archive/],
    ] as const) {
      const unsafe = fresh("unsafe.tar");
      await writeTar(unsafe, [
        { name: "oci-layout", bytes: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
        { name, bytes: Buffer.from("x") },
      ]);
      await expectEcrxError(openOciArchiveSource(unsafe), "INVALID_INPUT", message);
    }

    const twice = fresh("twice.tar");
    await writeTar(twice, [
      { name: "index.json", bytes: Buffer.from("{}") },
      { name: "./index.json", bytes: Buffer.from("{}") },
    ]);
    await expectEcrxError(openOciArchiveSource(twice), "INVALID_INPUT", /holds "index.json" twice/);
  });
});

describe("OCI layout destination", () => {
  it("writes a new layout that appears only on commit", async () => {
    const image = await buildImage({
      format: "oci-layout",
      dir: fresh(),
      layers: [{ size: 100 * KiB }, { size: 5 * KiB, compression: "none" }],
    });
    const parent = fresh();
    await mkdir(parent);
    const target = join(parent, "out");
    const destination = await createOciLayoutDestination(target, ["t1"]);
    const source = await openOciLayoutSource(image.path);
    const root = await source.manifest();
    const [config] = await destination.missing([image.manifests[0]!.config]);
    await destination.putBlob({ ...config!, sizeIsExact: true }, await source.blob(config!), () => undefined);
    // Only the hidden staging folder and its claim, nothing at the target.
    expect((await readdir(parent)).sort()).toEqual([".out.ecrx-partial", ".out.ecrx-partial.lock"]);
    await destination.close(); // no commit: no layout; the verified blob stays staged to resume from
    expect(await readdir(parent)).toEqual([".out.ecrx-partial"]);
    expect(await readdir(join(parent, ".out.ecrx-partial"))).toEqual(["blobs"]);

    const copied = await copyImage(source, await createOciLayoutDestination(target, ["t1"]));
    expect(copied.digest).toBe(root.digest);
    expect(await readdir(parent)).toEqual(["out"]);
    const index = JSON.parse(await readFile(join(target, "index.json"), "utf8"));
    expect(index.manifests).toEqual([
      {
        mediaType: MediaType.OciManifest,
        digest: root.digest,
        size: root.bytes.length,
        annotations: { "org.opencontainers.image.ref.name": "t1" },
      },
    ]);
    const reread = await openOciLayoutSource(target, "t1");
    expect((await reread.manifest()).bytes.equals(root.bytes)).toBe(true);
    await reread.close();
    await source.close();
  });

  it("adds to an existing layout, keeps what is there, moves a tag, and leaves no staging behind", async () => {
    const target = fresh();
    const a = await buildImage({ format: "oci-layout", dir: fresh(), seed: "a" });
    const b = await buildImage({ format: "oci-layout", dir: fresh(), seed: "b" });
    await copyImage(
      await openOciLayoutSource(a.path),
      await createOciLayoutDestination(target, ["a", "moving"]),
    );
    await copyImage(
      await openOciLayoutSource(b.path),
      await createOciLayoutDestination(target, ["b", "moving"]),
    );
    const index = JSON.parse(await readFile(join(target, "index.json"), "utf8")) as ImageIndex;
    const names = Object.fromEntries(
      index.manifests.map((d) => [d.annotations?.["org.opencontainers.image.ref.name"], d.digest]),
    );
    expect(names).toEqual({ a: a.root.digest, b: b.root.digest, moving: b.root.digest });
    expect((await readdir(target)).sort()).toEqual(["blobs", "index.json", "oci-layout"]);

    // A failed transfer into the existing layout changes nothing.
    const before = await readFile(join(target, "index.json"));
    const destination = await createOciLayoutDestination(target, ["c"]);
    const bad = {
      mediaType: MediaType.OciLayer,
      digest: sha256Digest(Buffer.from("other")),
      size: 5,
      sizeIsExact: true,
    };
    await expectEcrxError(
      destination.putBlob(bad, Readable.from([Buffer.from("wrong")]), () => undefined),
      "INTEGRITY",
      /digest mismatch/,
    );
    await destination.close();
    expect((await readFile(join(target, "index.json"))).equals(before)).toBe(true);
    expect((await readdir(target)).sort()).toEqual(["blobs", "index.json", "oci-layout"]);
  });

  it("knows which blobs it has and computes digests it is not given", async () => {
    const image = await buildImage({ format: "oci-layout", dir: fresh() });
    const destination = await createOciLayoutDestination(image.path);
    const layer = image.manifests[0]!.layers[0]!;
    const unknown = { mediaType: MediaType.OciLayer, digest: sha256Digest(Buffer.from("new")), size: 3 };
    expect(await destination.missing([layer, unknown])).toEqual([unknown]);
    const body = Buffer.from("compressed on the way");
    const put = await destination.putBlob(
      { mediaType: MediaType.OciLayerGzip, digest: undefined, size: 1000, sizeIsExact: false },
      Readable.from([body]),
      () => undefined,
    );
    expect(put).toEqual({ mediaType: MediaType.OciLayerGzip, digest: sha256Digest(body), size: body.length });
    await destination.close();
  });

  it("refuses a folder that is not a layout, and a manifest whose digest is wrong", async () => {
    const folder = fresh();
    await mkdir(folder);
    await writeFile(join(folder, "file"), "x");
    await expectEcrxError(createOciLayoutDestination(folder), "USAGE", /not empty and not an OCI layout/);
    const destination = await createOciLayoutDestination(fresh());
    await expectEcrxError(
      destination.putManifest(
        {
          bytes: Buffer.from("{}"),
          mediaType: MediaType.OciManifest,
          digest: sha256Digest(Buffer.from("x")),
        },
        [],
      ),
      "INTEGRITY",
      /digest mismatch/,
    );
    await destination.close();
  });

  it("writes an OCI archive", async () => {
    const image = await buildImage({
      format: "oci-layout",
      dir: fresh(),
      platforms: ["linux/amd64", "linux/arm64"],
    });
    const out = join(fresh(), "out.tar");
    await mkdir(join(out, ".."));
    await copyImage(await openOciLayoutSource(image.path), await createOciArchiveDestination(out, ["v2"]));
    expect(await readdir(join(out, ".."))).toEqual(["out.tar"]);
    const source = await openOciArchiveSource(out, "v2");
    expect((await source.manifest()).digest).toBe(image.root.digest);
    expect(await readWholeImage(source)).toBeGreaterThan(0);
    await source.close();
  });
});

describe("OCI interop with umoci and skopeo", () => {
  const hasSkopeo = requireTool("skopeo");
  const hasUmoci = requireTool("umoci");

  it.skipIf(!hasUmoci)("reads a layout made by umoci, chosen by tag", async () => {
    const layout = fresh();
    await tool("umoci", ["init", "--layout", layout]);
    await tool("umoci", ["new", "--image", `${layout}:base`]);
    const file = fresh("payload");
    await writeFile(file, "payload ".repeat(1000));
    await tool("umoci", ["insert", "--rootless", "--image", `${layout}:base`, file, "/payload"]);
    await tool("umoci", ["tag", "--image", `${layout}:base`, "other"]);
    const source = await openOciLayoutSource(layout, "base");
    expect(await readWholeImage(source)).toBeGreaterThan(0);
    await source.close();
  });

  it.skipIf(!hasSkopeo)("reads an OCI archive written by skopeo", async () => {
    const image = await buildImage({
      format: "oci-layout",
      dir: fresh(),
      layers: [{ size: 200 * KiB }, { size: 1 * KiB, compression: "none" }],
    });
    const archive = fresh("skopeo.tar");
    await tool("skopeo", ["copy", `oci:${image.path}:latest`, `oci-archive:${archive}:kept`]);
    // skopeo may rewrite the manifest (it compresses uncompressed layers): compare with what it wrote.
    const written = await tool("skopeo", ["inspect", "--raw", `oci-archive:${archive}:kept`]);
    const source = await openOciArchiveSource(archive, "kept");
    expect((await source.manifest()).bytes.toString()).toBe(written);
    expect(await readWholeImage(source)).toBeGreaterThan(0);
    await source.close();
  });

  it.skipIf(!hasSkopeo)("writes layouts and archives that skopeo copies (verifying digests)", async () => {
    const image = await buildImage({
      format: "oci-layout",
      dir: fresh(),
      platforms: ["linux/amd64", "linux/arm64/v8"],
      layers: [
        { size: 1 * MiB, compression: "zstd" },
        { size: 64 * KiB, compression: "none" },
      ],
    });
    const layout = fresh();
    await copyImage(await openOciLayoutSource(image.path), await createOciLayoutDestination(layout, ["v1"]));
    const raw = JSON.parse(await tool("skopeo", ["inspect", "--raw", `oci:${layout}:v1`]));
    expect(raw.manifests).toHaveLength(2);
    await tool("skopeo", ["copy", "--all", `oci:${layout}:v1`, `oci:${fresh()}:check`]);

    const archive = fresh("ours.tar");
    await copyImage(
      await openOciLayoutSource(image.path),
      await createOciArchiveDestination(archive, ["v1"]),
    );
    await tool("skopeo", ["copy", "--all", `oci-archive:${archive}:v1`, `oci:${fresh()}:check`]);
  });
});
