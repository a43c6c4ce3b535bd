import { EcrxError } from "../errors.js";
import { pathExists } from "../util/fs.js";
import type { ImageReference } from "../reference/reference.js";
import { createDockerArchiveDestination } from "./docker-archive/destination.js";
import { sniffImageFile } from "./docker-archive/sniff.js";
import { openDockerArchiveSource } from "./docker-archive/source.js";
import { createOciArchiveDestination, createOciLayoutDestination } from "./oci-layout/destination.js";
import { openOciArchiveSource, openOciLayoutSource } from "./oci-layout/source.js";
import type { ImageDestination, ImageSource } from "./types.js";

/** Opens an image file of any file transport as a source; a bare path is recognised by its content. */
export async function openFileSource(ref: ImageReference): Promise<ImageSource> {
  if ("path" in ref && !(await pathExists(ref.path))) {
    throw new EcrxError("USAGE", `no such file or folder: ${ref.path}`);
  }
  switch (ref.kind) {
    case "docker-archive":
      return openDockerArchiveSource(ref.path, ref.repoTags[0]);
    case "oci":
      return openOciLayoutSource(ref.path, ref.tags[0]);
    case "oci-archive":
      return openOciArchiveSource(ref.path, ref.tags[0]);
    case "path": {
      const kind = await sniffImageFile(ref.path);
      return openFileSource(
        kind === "docker-archive"
          ? { kind, path: ref.path, repoTags: [] }
          : { kind, path: ref.path, tags: [] },
      );
    }
    default:
      throw new EcrxError("USAGE", `${ref.registry} is a registry, not an image file`, {
        hint: "give docker-archive:PATH, oci:PATH or oci-archive:PATH",
      });
  }
}

/** Opens a file destination; nothing is visible at `path` until the transfer commits. */
export async function openFileDestination(ref: ImageReference): Promise<ImageDestination> {
  switch (ref.kind) {
    case "docker-archive":
      return createDockerArchiveDestination(ref.path, { repoTags: ref.repoTags });
    case "oci":
      return createOciLayoutDestination(ref.path, ref.tags);
    case "oci-archive":
      return createOciArchiveDestination(ref.path, ref.tags);
    case "path":
      throw new EcrxError("USAGE", `say which format to write at ${ref.path}`, {
        hint: `use docker-archive:${ref.path}, oci:${ref.path} or oci-archive:${ref.path}`,
      });
    default:
      throw new EcrxError("USAGE", `${ref.registry} is a registry, not an image file`);
  }
}
