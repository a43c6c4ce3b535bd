import { BatchDeleteImageCommand, type ImageIdentifier } from "@aws-sdk/client-ecr";
import { EcrxError } from "./errors.js";
import { formatName, parseReference, type EcrReference } from "./reference/reference.js";
import type { AwsOptions } from "./transports/aws/client-config.js";
import { ecrError } from "./transports/ecr/errors.js";
import { privateEcrClient } from "./transports/remote.js";

export interface RemoveOptions {
  /** Region, endpoint, profile and credentials. Default: the SDK's chains. */
  aws?: AwsOptions;
  signal?: AbortSignal;
}

/**
 * What became of one tag or digest asked for:
 * - `deleted`: gone; `removed` lists what ECR deleted (a digest deletes the image and its tags; a
 *   tag deletes only itself while the image keeps other tags);
 * - `not-found`: there was no such tag or digest (ImageNotFound);
 * - `refused`: an index still references the image (ImageReferencedByManifestList);
 * - `failed`: any other failure ECR reported for it.
 */
export interface RemoveOutcome {
  /** `registry/repository:tag` or `registry/repository@digest`. */
  reference: string;
  status: "deleted" | "not-found" | "refused" | "failed";
  removed: { digest: string; tag?: string }[];
  /** ECR's failure code and reason, for the other statuses. */
  failureCode?: string;
  reason?: string;
}

export interface RemoveResult {
  outcomes: RemoveOutcome[];
  /** Whether every tag and digest asked for was deleted. */
  ok: boolean;
}

/** BatchDeleteImage takes at most 100 image ids. */
const BATCH_LIMIT = 100;

/**
 * Deletes tags or digests from ECR repositories (BatchDeleteImage, 100 ids per call, one call per
 * repository and batch). A reference must name its tag or digest: `repo` alone never means
 * `repo:latest` here. ECR refuses to delete an image an index references; that and every other
 * per-image failure is reported in the outcome, not thrown, so one bad id does not hide the rest.
 */
export async function remove(references: string[], options: RemoveOptions = {}): Promise<RemoveResult> {
  if (references.length === 0) throw new EcrxError("USAGE", "give at least one tag or digest to delete");
  const groups = new Map<string, { ref: EcrReference; ids: ImageIdentifier[] }>();
  for (const text of references) {
    const ref = parseDeletable(text);
    const key = `${ref.registry}/${ref.repository}`;
    const group = groups.get(key) ?? { ref, ids: [] };
    const wanted: ImageIdentifier[] =
      ref.digest !== undefined ? [{ imageDigest: ref.digest }] : ref.tags.map((t) => ({ imageTag: t }));
    for (const id of wanted) {
      // ECR refuses a batch that names an image twice.
      if (!group.ids.some((o) => o.imageDigest === id.imageDigest && o.imageTag === id.imageTag)) {
        group.ids.push(id);
      }
    }
    groups.set(key, group);
  }

  const outcomes: RemoveOutcome[] = [];
  for (const { ref, ids } of groups.values()) {
    const client = privateEcrClient(ref, options.aws ?? {});
    try {
      for (let i = 0; i < ids.length; i += BATCH_LIMIT) {
        const batch = ids.slice(i, i + BATCH_LIMIT);
        let out;
        try {
          out = await client.send(
            new BatchDeleteImageCommand({
              registryId: ref.registryId,
              repositoryName: ref.repository,
              imageIds: batch,
            }),
            { abortSignal: options.signal },
          );
        } catch (err) {
          throw ecrError(err, `BatchDeleteImage in ${ref.repository}`);
        }
        for (const id of batch) outcomes.push(outcomeOf(ref, id, out.imageIds ?? [], out.failures ?? []));
      }
    } finally {
      client.destroy();
    }
  }
  return { outcomes, ok: outcomes.every((o) => o.status === "deleted") };
}

function parseDeletable(text: string): EcrReference {
  const ref = parseReference(text, { exists: () => false });
  if (ref.kind !== "ecr") {
    throw new EcrxError("USAGE", `rm deletes from private ECR; ${text} is not an ECR image`, {
      hint: "use <account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag> or …/<repo>@sha256:…",
    });
  }
  // parseReference reads `repo` as `repo:latest`; deleting needs the tag or digest written out.
  const [name = "", digest] = text.split("@");
  const hasTag = name.slice(name.lastIndexOf("/") + 1).includes(":");
  if (!hasTag && digest === undefined) {
    throw new EcrxError("USAGE", `say which image of ${text} to delete`, {
      hint: `write ${text}:<tag> or ${text}@sha256:<digest>`,
    });
  }
  if (hasTag && digest !== undefined) {
    throw new EcrxError("USAGE", `give a tag or a digest to delete, not both: ${text}`);
  }
  return ref;
}

type Failure = { imageId?: ImageIdentifier; failureCode?: string; failureReason?: string };

function outcomeOf(
  ref: EcrReference,
  id: ImageIdentifier,
  deleted: ImageIdentifier[],
  failures: Failure[],
): RemoveOutcome {
  const name = formatName(ref);
  const reference = id.imageDigest !== undefined ? `${name}@${id.imageDigest}` : `${name}:${id.imageTag}`;
  const sameId = (other: ImageIdentifier | undefined) =>
    other !== undefined &&
    (id.imageDigest !== undefined ? other.imageDigest === id.imageDigest : other.imageTag === id.imageTag);
  const failure = failures.find((f) => sameId(f.imageId));
  if (failure !== undefined) {
    const status =
      failure.failureCode === "ImageNotFound"
        ? "not-found"
        : failure.failureCode === "ImageReferencedByManifestList"
          ? "refused"
          : "failed";
    return {
      reference,
      status,
      removed: [],
      ...(failure.failureCode === undefined ? {} : { failureCode: failure.failureCode }),
      ...(failure.failureReason === undefined ? {} : { reason: failure.failureReason }),
    };
  }
  const removed = deleted
    .filter((d) =>
      id.imageDigest !== undefined ? d.imageDigest === id.imageDigest : d.imageTag === id.imageTag,
    )
    .map((d) => ({ digest: d.imageDigest ?? "", ...(d.imageTag === undefined ? {} : { tag: d.imageTag }) }));
  return { reference, status: "deleted", removed };
}

/**
 * The exit status a failed removal deserves: CONFLICT when an index still references an image,
 * NOT_FOUND when something asked for was not there, INVALID_INPUT for other refusals.
 */
export function removeErrorCode(
  result: RemoveResult,
): "CONFLICT" | "NOT_FOUND" | "INVALID_INPUT" | undefined {
  if (result.ok) return undefined;
  if (result.outcomes.some((o) => o.status === "refused")) return "CONFLICT";
  if (result.outcomes.some((o) => o.status === "failed")) return "INVALID_INPUT";
  return "NOT_FOUND";
}
