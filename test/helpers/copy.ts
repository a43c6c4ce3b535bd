import { buffer } from "node:stream/consumers";
import { verifiedStream } from "../../src/manifest/digest.js";
import { parseRawManifest } from "../../src/manifest/parse.js";
import type { RawManifest } from "../../src/manifest/types.js";
import type { ImageDestination, ImageSource } from "../../src/transports/types.js";

/**
 * A minimal copy for transport tests, independent of the engine: walks the manifest graph,
 * streams every blob through a digest check into the destination, puts children by digest and
 * the root last with `tags`, then commits. Closes the destination, also on failure.
 */
export async function copyImage(
  source: ImageSource,
  destination: ImageDestination,
  tags: string[] = [],
): Promise<RawManifest> {
  try {
    const root = await source.manifest();
    await copyManifest(source, destination, root, tags);
    await destination.commit();
    return root;
  } finally {
    await destination.close();
  }
}

async function copyManifest(
  source: ImageSource,
  destination: ImageDestination,
  raw: RawManifest,
  tags: string[],
): Promise<void> {
  const parsed = parseRawManifest(raw);
  if (parsed.kind === "index") {
    for (const child of parsed.index.manifests)
      await copyManifest(source, destination, await source.manifest(child.digest), []);
  } else {
    const blobs = [parsed.manifest.config, ...parsed.manifest.layers];
    for (const d of await destination.missing(blobs)) {
      const body = verifiedStream(await source.blob(d), d);
      await destination.putBlob(
        { mediaType: d.mediaType, digest: d.digest, size: d.size, sizeIsExact: true },
        body,
        () => undefined,
      );
    }
  }
  await destination.putManifest(raw, tags);
}

/** Reads every blob of the image (all platforms) and checks it against its descriptor. */
export async function readWholeImage(source: ImageSource, raw?: RawManifest): Promise<number> {
  const parsed = parseRawManifest(raw ?? (await source.manifest()));
  if (parsed.kind === "index") {
    let total = 0;
    for (const child of parsed.index.manifests)
      total += await readWholeImage(source, await source.manifest(child.digest));
    return total;
  }
  let total = 0;
  for (const d of [parsed.manifest.config, ...parsed.manifest.layers]) {
    total += (await buffer(verifiedStream(await source.blob(d), d))).length;
  }
  return total;
}
