import { stat } from "node:fs/promises";
import { join } from "node:path";
import { EcrxError } from "../../errors.js";
import { sniffFileCompression } from "../../manifest/detect.js";
import { pathExists } from "../../util/fs.js";
import { indexTar } from "../../util/tar.js";

export type ImageFileKind = "oci" | "oci-archive" | "docker-archive";

/**
 * What a bare path holds: a folder with `oci-layout` is an OCI layout; a tar with `manifest.json`
 * is a docker archive (Docker 25+ ones hold a layout too, which the docker-archive source prefers);
 * a tar with only `index.json` and `oci-layout` is an OCI archive; a compressed file is taken for a
 * compressed `docker save` (its source reads a layout inside as well).
 */
export async function sniffImageFile(path: string): Promise<ImageFileKind> {
  const info = await stat(path).catch(() => undefined);
  if (!info) throw new EcrxError("USAGE", `no such file or folder: ${path}`);
  if (info.isDirectory()) {
    if (await pathExists(join(path, "oci-layout"))) return "oci";
    throw new EcrxError("INVALID_INPUT", `${path} is a folder without an oci-layout file`, {
      hint: "an OCI layout holds oci-layout, index.json and blobs/",
    });
  }
  if ((await sniffFileCompression(path)) !== "none") return "docker-archive";
  const { members } = await indexTar(path);
  if (members.has("manifest.json")) return "docker-archive";
  if (members.has("index.json") && members.has("oci-layout")) return "oci-archive";
  throw new EcrxError(
    "INVALID_INPUT",
    `${path} is a tar archive but not an image (no manifest.json or index.json)`,
  );
}
