import { BatchGetImageCommand, PutImageCommand } from "@aws-sdk/client-ecr";
import { EcrxError } from "./errors.js";
import { sha256Digest } from "./manifest/digest.js";
import { MANIFEST_TYPES } from "./manifest/media-types.js";
import { formatName, parseReference, validateTag, type EcrReference } from "./reference/reference.js";
import type { AwsOptions } from "./transports/aws/client-config.js";
import { ecrError, exceptionName } from "./transports/ecr/errors.js";
import { privateEcrClient } from "./transports/remote.js";

export interface TagOptions {
  /** Region, endpoint, profile and credentials. Default: the SDK's chains. */
  aws?: AwsOptions;
  signal?: AbortSignal;
}

export interface TagResult {
  /** `registry/repository`. */
  repository: string;
  digest: string;
  mediaType: string;
  /** Each new tag: `tagged`, or `unchanged` when it already named this image. */
  tags: { tag: string; status: "tagged" | "unchanged" }[];
}

/** ECR's tag length limit (ecr-spec.md section 2). */
const MAX_ECR_TAG = 300;

/**
 * Adds tags to an image already in ECR without moving a blob, as the ECR documentation
 * recommends for retagging: BatchGetImage of the image (accepting all four manifest types, so ECR
 * returns the stored bytes unconverted) and PutImage of the same bytes under each new tag. The
 * digest stays the image's. A tag that already names this image is fine
 * (ImageAlreadyExistsException); a tag of another image in an IMMUTABLE repository is CONFLICT.
 */
export async function tag(
  reference: string,
  newTags: string[],
  options: TagOptions = {},
): Promise<TagResult> {
  const ref = parseReference(reference);
  if (ref.kind !== "ecr") {
    throw new EcrxError("USAGE", `tag works on private ECR images; ${reference} is not one`, {
      hint: "use <account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag> or …/<repo>@sha256:…",
    });
  }
  if (newTags.length === 0) throw new EcrxError("USAGE", "give at least one new tag");
  const tags = [...new Set(newTags.flatMap((t) => t.split(",")))];
  for (const t of tags) validateTag(t, MAX_ECR_TAG);
  if (ref.tags.length > 1) {
    throw new EcrxError("USAGE", `name one image to tag, not several tags: ${reference}`);
  }

  const client = privateEcrClient(ref, options.aws ?? {});
  const ids = { registryId: ref.registryId, repositoryName: ref.repository };
  try {
    const image = await getImage(ref, options.signal, client);
    const result: TagResult = {
      repository: formatName(ref),
      digest: image.digest,
      mediaType: image.mediaType,
      tags: [],
    };
    for (const t of tags) {
      try {
        await client.send(
          new PutImageCommand({
            ...ids,
            imageManifest: image.manifest,
            imageManifestMediaType: image.mediaType,
            imageTag: t,
            // ECR checks the bytes against it: the tag can only land on the image we read.
            imageDigest: image.digest,
          }),
          { abortSignal: options.signal },
        );
        result.tags.push({ tag: t, status: "tagged" });
      } catch (err) {
        if (exceptionName(err) === "ImageAlreadyExistsException") {
          result.tags.push({ tag: t, status: "unchanged" });
          continue;
        }
        const error = ecrError(err, `PutImage ${ref.repository}:${t}`);
        if (error.code === "CONFLICT") {
          throw new EcrxError(
            "CONFLICT",
            `tag ${t} already names another image in ${ref.repository}, whose tags are immutable`,
            { awsName: error.awsName, cause: err, hint: "choose a new tag; immutable tags never move" },
          );
        }
        throw error;
      }
    }
    return result;
  } finally {
    client.destroy();
  }
}

async function getImage(
  ref: EcrReference,
  signal: AbortSignal | undefined,
  client: ReturnType<typeof privateEcrClient>,
): Promise<{ manifest: string; mediaType: string; digest: string }> {
  const imageId =
    ref.digest !== undefined ? { imageDigest: ref.digest } : { imageTag: ref.tags[0] ?? "latest" };
  const what = `${ref.repository}${imageId.imageDigest ? `@${imageId.imageDigest}` : `:${imageId.imageTag}`}`;
  let out;
  try {
    out = await client.send(
      new BatchGetImageCommand({
        registryId: ref.registryId,
        repositoryName: ref.repository,
        imageIds: [imageId],
        acceptedMediaTypes: [...MANIFEST_TYPES],
      }),
      { abortSignal: signal },
    );
  } catch (err) {
    throw ecrError(err, `BatchGetImage ${what}`);
  }
  const image = out.images?.[0];
  if (!image?.imageManifest || !image.imageManifestMediaType) {
    const failure = out.failures?.[0];
    throw new EcrxError(
      failure?.failureCode === "ImageNotFound" ? "NOT_FOUND" : "INVALID_INPUT",
      `image ${what} not found: ${failure?.failureReason ?? "no manifest"}`,
      {
        ...(failure?.failureCode === undefined ? {} : { awsName: failure.failureCode }),
        hint: "check the tag or digest with `ecrx ls`",
      },
    );
  }
  const digest = sha256Digest(Buffer.from(image.imageManifest, "utf8"));
  if (image.imageId?.imageDigest !== undefined && image.imageId.imageDigest !== digest) {
    throw new EcrxError(
      "INTEGRITY",
      `manifest of ${what} hashes to ${digest}, the registry says ${image.imageId.imageDigest}`,
    );
  }
  return { manifest: image.imageManifest, mediaType: image.imageManifestMediaType, digest };
}
