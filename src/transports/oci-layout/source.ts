import { stat } from "node:fs/promises";
import { EcrxError } from "../../errors.js";
import { openFolderTree, openTarTree } from "../../util/file-tree.js";
import { LayoutImageSource } from "./layout-source.js";

/**
 * Opens an OCI image layout folder. `tag` selects the index.json entry whose
 * `org.opencontainers.image.ref.name` it is; without one the layout must hold a single image.
 */
export async function openOciLayoutSource(path: string, tag?: string): Promise<LayoutImageSource> {
  const info = await stat(path).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new EcrxError("INVALID_INPUT", `${path} is not a folder`, {
      hint: "an OCI layout is a folder with oci-layout and index.json",
    });
  }
  return LayoutImageSource.open(
    `oci:${path}${tag ? `:${tag}` : ""}`,
    await openFolderTree(path),
    tag ? [tag] : [],
  );
}

/** Opens an OCI archive (a tar of a layout), reading members in place; tag as for openOciLayoutSource. */
export async function openOciArchiveSource(path: string, tag?: string): Promise<LayoutImageSource> {
  return LayoutImageSource.open(
    `oci-archive:${path}${tag ? `:${tag}` : ""}`,
    await openTarTree(path),
    tag ? [tag] : [],
  );
}
