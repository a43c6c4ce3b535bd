/**
 * The registry (OCI distribution v2) API of the emulator, under /v2/ on the port of the ECR API and
 * over the same store and private repositories (ecr-spec.md section 7): an image pushed through
 * either API is read through the other. Uploads, PutImage's checks and image deletion are the
 * shared operations of registry-core.ts; this file adds the HTTP surface and ECR's quirks on it:
 *
 * - `Authorization: Basic base64("AWS:<password>")` with GetAuthorizationToken's token; without it
 *   401 and `Www-Authenticate: Basic realm="https://<host>/",service="ecr.amazonaws.com"`.
 * - Blob GET answers 307 to a presigned download URL, as ECR redirects to S3.
 * - PATCH answers 201, not 202; every chunk but the last must be >= 5 MiB (refused at the final
 *   PUT, like LayerPartTooSmallException at CompleteLayerUpload); the `Range` header stops
 *   advancing after the first PATCH. Monolithic POST/PUT and one streamed PATCH work.
 * - Cross-repository mount only with `registryMount` (ECR's BLOB_MOUNTING setting) and only for
 *   blobs an image of the source repository references; otherwise the POST starts an upload.
 * - Throttling is 429 TOOMANYREQUESTS, each request counted against the ECR API operation that
 *   does the same work (PATCH = UploadLayerPart, manifest GET = BatchGetImage, ...).
 * - The fault target `registry` applies throttle/error/reset/lost/latency to every request here.
 *
 * Only private repositories are served: ECR Public's anonymous pulls (public.ecr.aws's /token) are
 * not.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { isImageManifestType, MediaType } from "../manifest/media-types.js";
import { ApiError } from "./api.js";
import { readAuthorizationToken } from "./auth-tokens.js";
import { createPrivateScope } from "./ecr-api.js";
import type { FaultInjector } from "./faults.js";
import type { RateLimiter } from "./rates.js";
import {
  IMAGE_MANIFEST_MAX,
  IMAGE_TAG_MAX,
  assertWithinUploadLimits,
  changeRepository,
  deleteImage,
  digestSyntax,
  epochSeconds,
  finishLayerUpload,
  ownUpload,
  parseManifest,
  resolveImageId,
  sha256Digest,
  storeImage,
  uploadLimitExceeded,
  type ImageId,
  type RegistryScope,
  type RepositoryTarget,
} from "./registry-core.js";
import {
  RegistryError,
  boundedBody,
  emptyReply,
  errorReply,
  fromApiError,
  jsonReply,
  parseRoute,
  readBoundedBody,
  sendReply,
  type Reply,
  type Route,
} from "./registry-http.js";
import type { Store, UploadHandle } from "./store.js";

export interface RegistryApiOptions {
  store: Store;
  accountId: string;
  region: string;
  /** ECR's registry blob mounting (account setting BLOB_MOUNTING); default off, as in AWS. */
  mount: boolean;
  /** Shared with the ECR API: a registry request spends the token of its ECR operation. */
  limiter: RateLimiter;
  /** The fault draws, target `registry`; their latency includes the network's API latency. */
  faults: Pick<FaultInjector, "decide">;
  now: () => Date;
  /** A presigned download URL of the blob for a client that reached this server as `requestHost`. */
  downloadUrl(digest: string, requestHost: string | undefined, now: Date): Promise<string>;
}

const API_VERSION_HEADER = { "Docker-Distribution-API-Version": "registry/2.0" };
/** OCI tags, with ECR's 300-character limit instead of the spec's 128. */
const TAG = new RegExp(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,${IMAGE_TAG_MAX - 1}}$`);
/** Where ECR's page size of list operations ends; a larger `n` is cut to it (unconfirmed). */
const MAX_PAGE = 1000;

/** The methods each route serves, and the ECR operation whose rate each request spends. */
const METHODS: Readonly<Record<Route["kind"], Readonly<Record<string, string | undefined>>>> = {
  base: { GET: undefined, HEAD: undefined },
  catalog: { GET: "DescribeRepositories" },
  manifest: { GET: "BatchGetImage", HEAD: "BatchGetImage", PUT: "PutImage", DELETE: "BatchDeleteImage" },
  blob: { GET: "GetDownloadUrlForLayer", HEAD: "BatchCheckLayerAvailability", DELETE: undefined },
  uploads: { POST: "InitiateLayerUpload" },
  upload: { GET: undefined, PATCH: "UploadLayerPart", PUT: "CompleteLayerUpload", DELETE: undefined },
  tags: { GET: "ListImages" },
  referrers: { GET: undefined },
};

/** Errors of the final PUT that leave the upload open: its final chunk is taken back. */
const UPLOAD_STAYS_OPEN = new Set([
  "EmptyUploadException",
  "LayerPartTooSmallException",
  "InvalidLayerException",
]);

export class RegistryApi {
  private readonly scope: RegistryScope;

  constructor(private readonly options: RegistryApiOptions) {
    this.scope = createPrivateScope(options.store, { accountId: options.accountId, region: options.region });
  }

  /** Serves one request under /v2/. Never throws: failures are answered as OCI errors. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    for (const [name, value] of Object.entries(API_VERSION_HEADER)) res.setHeader(name, value);
    const url = new URL(req.url ?? "/", "http://registry");
    const now = this.options.now();
    let reply: Reply;
    let lost = false;
    try {
      const route = parseRoute(url.pathname);
      if (route === undefined) throw new RegistryError(404, "UNSUPPORTED", `no route for ${url.pathname}`);
      this.authenticate(req, now);
      const method = req.method ?? "GET";
      const methods = METHODS[route.kind];
      if (!Object.hasOwn(methods, method)) {
        throw new RegistryError(405, "UNSUPPORTED", `${method} is not supported on this route`, {
          Allow: Object.keys(methods).join(", "),
        });
      }
      if (route.kind === "blob" && method === "DELETE") {
        // ECR deletes blobs with the images that reference them, never one by one.
        throw new RegistryError(405, "UNSUPPORTED", "The operation is unsupported.", { Allow: "GET, HEAD" });
      }
      if ("name" in route) this.checkName(route.name);
      const operation = methods[method];
      if (operation !== undefined && !this.options.limiter.allow("ecr", operation)) {
        throw new RegistryError(429, "TOOMANYREQUESTS", "Rate exceeded");
      }
      const fault = this.options.faults.decide("registry");
      if (fault.latencyMs > 0) await sleep(fault.latencyMs);
      if (fault.refuse === "reset") {
        req.socket.destroy();
        return;
      }
      if (fault.refuse === "throttle") throw new RegistryError(429, "TOOMANYREQUESTS", "Rate exceeded");
      if (fault.refuse === "error") throw new RegistryError(500, "UNKNOWN", "An internal error occurred.");
      lost = fault.lost;
      reply = await this.dispatch(route, method, url.searchParams, req, now);
    } catch (err) {
      reply = this.failure(req, res, err);
    }
    if (lost) {
      req.socket.destroy();
      return;
    }
    sendReply(req, res, reply);
  }

  private failure(req: IncomingMessage, res: ServerResponse, err: unknown): Reply {
    let failure =
      err instanceof ApiError ? fromApiError(err) : err instanceof RegistryError ? err : undefined;
    if (failure === undefined) {
      const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
      if (req.destroyed && !req.complete) {
        // The client went away mid-body; the answer reaches nobody.
        failure = new RegistryError(400, "BLOB_UPLOAD_INVALID", "the request body ended early");
      } else {
        process.stderr.write(`ecrx serve: internal error in ${req.method} ${req.url}: ${detail}\n`);
        failure = new RegistryError(500, "UNKNOWN", "An internal error occurred.");
      }
    }
    if (hasUnreadBody(req)) {
      // The rest of a refused body is not read: close the connection once the answer is out.
      res.setHeader("Connection", "close");
      res.once("finish", () => req.socket.destroy());
    }
    const reply = errorReply(failure);
    if (failure.status === 401) {
      const host =
        req.headers.host ?? `${this.options.accountId}.dkr.ecr.${this.options.region}.amazonaws.com`;
      reply.headers["Www-Authenticate"] = `Basic realm="https://${host}/",service="ecr.amazonaws.com"`;
    }
    return reply;
  }

  private dispatch(
    route: Route,
    method: string,
    query: URLSearchParams,
    req: IncomingMessage,
    now: Date,
  ): Promise<Reply> | Reply {
    switch (route.kind) {
      case "base":
        return jsonReply(200, {});
      case "catalog":
        return this.catalog(query);
      case "tags":
        return this.tags(route.name, query);
      case "referrers":
        return this.referrers(route.name, route.digest, query);
      case "manifest":
        if (method === "PUT") return this.putManifest(route.name, route.reference, req, now);
        if (method === "DELETE") return this.deleteManifest(route.name, route.reference);
        return this.getManifest(route.name, route.reference, req);
      case "blob":
        return this.getBlob(route.name, route.digest, method, req, now);
      case "uploads":
        return this.startUpload(route.name, query, req, now);
      case "upload":
        if (method === "PATCH") return this.patchUpload(route.name, route.uploadId, req);
        if (method === "PUT") return this.putUpload(route.name, route.uploadId, query, req);
        if (method === "DELETE") return this.cancelUpload(route.name, route.uploadId);
        return this.uploadStatus(route.name, route.uploadId);
    }
  }

  // ---- authentication and names ---------------------------------------------------------------

  private authenticate(req: IncomingMessage, now: Date): void {
    const match = /^Basic\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
    if (match === null) throw new RegistryError(401, "UNAUTHORIZED", "Not Authorized");
    const token = match[1]!;
    const claims = readAuthorizationToken(this.options.store, token, now);
    if (claims !== undefined && claims.service === "ecr" && claims.accountId === this.options.accountId)
      return;
    // A token that passes at the epoch is genuine, so it failed now for its age alone.
    if (
      claims === undefined &&
      readAuthorizationToken(this.options.store, token, new Date(0)) !== undefined
    ) {
      throw new RegistryError(
        401,
        "DENIED",
        "Your authorization token has expired. Reauthenticate and try again.",
      );
    }
    throw new RegistryError(401, "UNAUTHORIZED", "Not Authorized");
  }

  private checkName(name: string): void {
    const rule = this.scope.repositoryName;
    if (name.length < (rule.min ?? 0) || name.length > (rule.max ?? Infinity) || !rule.pattern!.test(name)) {
      throw new RegistryError(400, "NAME_INVALID", `Invalid repository name '${name}'`);
    }
  }

  private repository(name: string): RepositoryTarget {
    const repository = this.options.store.getRepository("private", name);
    if (repository === undefined) {
      throw new RegistryError(
        404,
        "NAME_UNKNOWN",
        `The repository with name '${name}' does not exist in the registry with id '${this.options.accountId}'`,
      );
    }
    return { registryId: this.options.accountId, name, repository };
  }

  // ---- manifests --------------------------------------------------------------------------------

  /** A tag or a digest; TAG_INVALID / DIGEST_INVALID when it is neither. */
  private imageId(reference: string): ImageId {
    if (reference.includes(":")) {
      if (digestSyntax(reference) === "invalid") {
        throw new RegistryError(400, "DIGEST_INVALID", `Invalid digest '${reference}'`);
      }
      return { imageDigest: reference };
    }
    if (!TAG.test(reference)) throw new RegistryError(400, "TAG_INVALID", `Invalid tag '${reference}'`);
    return { imageTag: reference };
  }

  private async getManifest(name: string, reference: string, req: IncomingMessage): Promise<Reply> {
    const imageId = this.imageId(reference);
    const { repository } = this.repository(name);
    const resolved = resolveImageId(repository, imageId);
    const image = "digest" in resolved ? repository.images[resolved.digest] : undefined;
    if (!("digest" in resolved) || image === undefined) {
      throw new RegistryError(404, "MANIFEST_UNKNOWN", "Requested image not found");
    }
    // Never converted: an image stored in a type the client does not accept is not there for it,
    // as BatchGetImage's acceptedMediaTypes leaves it out.
    if (!accepts(req.headers.accept, image.mediaType)) {
      throw new RegistryError(
        404,
        "MANIFEST_UNKNOWN",
        `Requested image not found: it is a ${image.mediaType}, which the Accept header does not accept`,
      );
    }
    const bytes = await this.options.store.readManifest(resolved.digest);
    if (bytes === undefined) throw new Error(`manifest ${resolved.digest} is missing from the store`);
    return {
      status: 200,
      headers: {
        "Content-Type": image.mediaType,
        "Content-Length": bytes.length,
        "Docker-Content-Digest": resolved.digest,
      },
      body: bytes,
    };
  }

  private async putManifest(
    name: string,
    reference: string,
    req: IncomingMessage,
    now: Date,
  ): Promise<Reply> {
    const imageId = this.imageId(reference);
    if (imageId.imageDigest !== undefined && digestSyntax(imageId.imageDigest) === "unsupported") {
      throw new RegistryError(400, "DIGEST_INVALID", `Unsupported digest algorithm in '${reference}'`);
    }
    const target = this.repository(name);
    const bytes = await readBoundedBody(
      req,
      IMAGE_MANIFEST_MAX,
      () =>
        new RegistryError(413, "MANIFEST_INVALID", `The manifest is larger than ${IMAGE_MANIFEST_MAX} bytes`),
    );
    if (bytes.length === 0) throw new RegistryError(400, "MANIFEST_INVALID", "The manifest is empty");
    const text = bytes.toString("utf8");
    if (!Buffer.from(text, "utf8").equals(bytes)) {
      throw new RegistryError(400, "MANIFEST_INVALID", "The manifest is not valid UTF-8");
    }
    const contentType = req.headers["content-type"]?.trim();
    const declaredType = contentType === undefined || contentType === "" ? undefined : contentType;
    let stored: { digest: string; subject: string | undefined };
    try {
      stored = await storeImage(this.scope, target, {
        bytes,
        declaredType,
        tag: imageId.imageTag,
        expectedDigest: imageId.imageDigest,
        now,
      });
    } catch (err) {
      // The same manifest (and tag) again is a success on this API, as in every registry.
      if (!(err instanceof ApiError && err.type === "ImageAlreadyExistsException")) throw err;
      stored = { digest: sha256Digest(bytes), subject: parseManifest(text, declaredType).subject?.digest };
    }
    return emptyReply(201, {
      Location: `/v2/${name}/manifests/${stored.digest}`,
      "Docker-Content-Digest": stored.digest,
      ...(stored.subject === undefined ? {} : { "OCI-Subject": stored.subject }),
    });
  }

  /**
   * BatchDeleteImage's semantics for one id: by digest the image and its tags go; by tag the tag
   * goes, and the image with its last tag (ECR's rule; unconfirmed on this API).
   */
  private async deleteManifest(name: string, reference: string): Promise<Reply> {
    const imageId = this.imageId(reference);
    const target = this.repository(name);
    await changeRepository(this.scope, target, (draft) => {
      const outcome = deleteImage(draft, imageId);
      if (!("failure" in outcome)) return;
      const { failureCode, failureReason } = outcome.failure;
      // Thrown inside the change, so that the repository is not rewritten.
      if (failureCode === "ImageReferencedByManifestList") {
        throw new RegistryError(409, "DENIED", failureReason);
      }
      throw new RegistryError(404, "MANIFEST_UNKNOWN", "Requested image not found");
    });
    return emptyReply(202);
  }

  // ---- tags, catalog, referrers ----------------------------------------------------------------

  private tags(name: string, query: URLSearchParams): Reply {
    const { repository } = this.repository(name);
    const page = paginate(Object.keys(repository.tags).sort(), query, `/v2/${name}/tags/list`);
    return jsonReply(200, { name, tags: page.items }, page.headers);
  }

  private catalog(query: URLSearchParams): Reply {
    const names = this.options.store.listRepositories("private").map((r) => r.name);
    const page = paginate(names, query, "/v2/_catalog");
    return jsonReply(200, { repositories: page.items }, page.headers);
  }

  private async referrers(name: string, digest: string, query: URLSearchParams): Promise<Reply> {
    if (digestSyntax(digest) === "invalid")
      throw new RegistryError(400, "DIGEST_INVALID", `Invalid digest '${digest}'`);
    const { repository } = this.repository(name);
    const wanted = query.get("artifactType");
    const manifests: object[] = [];
    const referrers = Object.entries(repository.images)
      .filter(([, image]) => image.subject === digest)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [referrer, image] of referrers) {
      const bytes = await this.options.store.readManifest(referrer);
      if (bytes === undefined) throw new Error(`manifest ${referrer} is missing from the store`);
      const doc = JSON.parse(bytes.toString("utf8")) as {
        artifactType?: unknown;
        annotations?: unknown;
        config?: { mediaType?: unknown };
      };
      // OCI 1.1: the artifactType field, else (image manifests) the config's media type.
      const artifactType =
        typeof doc.artifactType === "string"
          ? doc.artifactType
          : isImageManifestType(image.mediaType)
            ? image.artifactMediaType
            : undefined;
      if (wanted !== null && artifactType !== wanted) continue;
      manifests.push({
        mediaType: image.mediaType,
        digest: referrer,
        size: bytes.length,
        ...(artifactType === undefined ? {} : { artifactType }),
        ...(typeof doc.annotations === "object" && doc.annotations !== null
          ? { annotations: doc.annotations }
          : {}),
      });
    }
    return jsonReply(
      200,
      { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests },
      wanted === null ? {} : { "OCI-Filters-Applied": "artifactType" },
      MediaType.OciIndex,
    );
  }

  // ---- blobs ------------------------------------------------------------------------------------

  private checkDigest(digest: string): void {
    if (digestSyntax(digest) === "invalid")
      throw new RegistryError(400, "DIGEST_INVALID", `Invalid digest '${digest}'`);
  }

  private async getBlob(
    name: string,
    digest: string,
    method: string,
    req: IncomingMessage,
    now: Date,
  ): Promise<Reply> {
    this.checkDigest(digest);
    const { repository } = this.repository(name);
    const size = repository.layers[digest] === undefined ? undefined : this.options.store.blobSize(digest);
    if (size === undefined) {
      throw new RegistryError(
        404,
        "BLOB_UNKNOWN",
        `The layer with digest '${digest}' does not exist in the repository with name '${name}'`,
      );
    }
    if (method === "HEAD") {
      return {
        status: 200,
        headers: {
          "Content-Length": size,
          "Content-Type": "application/octet-stream",
          "Docker-Content-Digest": digest,
        },
      };
    }
    // The download URL of GetDownloadUrlForLayer, with its rule: a blob no image references is
    // not handed out (LayerInaccessibleException there).
    if (!Object.values(repository.images).some((image) => image.blobs.includes(digest))) {
      throw new RegistryError(
        404,
        "BLOB_UNKNOWN",
        `The layer with digest '${digest}' is not available because it is not associated with an image.`,
      );
    }
    const location = await this.options.downloadUrl(digest, req.headers.host, now);
    return emptyReply(307, { Location: location, "Docker-Content-Digest": digest });
  }

  // ---- uploads ----------------------------------------------------------------------------------

  private uploadLocation(name: string, uploadId: string): string {
    return `/v2/${name}/blobs/uploads/${uploadId}`;
  }

  private async startUpload(
    name: string,
    query: URLSearchParams,
    req: IncomingMessage,
    now: Date,
  ): Promise<Reply> {
    const digest = query.get("digest");
    if (digest !== null) this.checkSupportedDigest(digest);
    const target = this.repository(name);
    const mounted = await this.mount(target, query.get("mount"), query.get("from"));
    if (mounted !== undefined) return mounted;
    const session = await this.options.store.createUpload("private", name, epochSeconds(now));
    if (digest === null) {
      return emptyReply(202, {
        Location: this.uploadLocation(name, session.id),
        "Docker-Upload-UUID": session.id,
        Range: "0-0",
      });
    }
    // Monolithic: the session is this request's own; a refusal leaves nothing behind.
    return this.options.store.withUpload(session.id, async (handle) => {
      const upload = ownUpload(this.scope, handle, session.id, target);
      try {
        await this.appendBody(upload, req);
      } catch (err) {
        await upload.discard();
        throw err;
      }
      try {
        return await this.finish(target, upload, digest);
      } catch (err) {
        if (err instanceof ApiError && UPLOAD_STAYS_OPEN.has(err.type)) await upload.discard();
        throw err;
      }
    });
  }

  /** The reply to a mount that succeeds; undefined to fall back to a plain upload. */
  private async mount(
    target: RepositoryTarget,
    digest: string | null,
    from: string | null,
  ): Promise<Reply | undefined> {
    if (!this.options.mount || digest === null || from === null) return undefined;
    if (digestSyntax(digest) !== "supported") return undefined;
    const source = this.options.store.getRepository("private", from);
    const size = this.options.store.blobSize(digest);
    if (source === undefined || size === undefined) return undefined;
    if (!Object.values(source.images).some((image) => image.blobs.includes(digest))) return undefined;
    const mediaType = source.layers[digest]?.mediaType;
    await changeRepository(this.scope, target, (draft) => {
      draft.layers[digest] ??= { size, ...(mediaType === undefined ? {} : { mediaType }) };
    });
    return emptyReply(201, {
      Location: `/v2/${target.name}/blobs/${digest}`,
      "Docker-Content-Digest": digest,
    });
  }

  private checkSupportedDigest(digest: string): void {
    const syntax = digestSyntax(digest);
    if (syntax === "invalid") throw new RegistryError(400, "DIGEST_INVALID", `Invalid digest '${digest}'`);
    if (syntax === "unsupported")
      throw new RegistryError(400, "DIGEST_INVALID", `Unsupported digest algorithm in '${digest}'`);
  }

  private withOwnUpload<T>(
    name: string,
    uploadId: string,
    fn: (upload: UploadHandle, target: RepositoryTarget) => Promise<T>,
  ): Promise<T> {
    const target = this.repository(name);
    return this.options.store.withUpload(uploadId, (handle) =>
      fn(ownUpload(this.scope, handle, uploadId, target), target),
    );
  }

  /**
   * `Range` as ECR reports it: the end of the first chunk, however many came after it
   * (aws/containers-roadmap#2831), so that a client which resumes from it fails here as there.
   * The upload status GET reports the same (unconfirmed).
   */
  private staleRange(upload: UploadHandle): string {
    const first = upload.session.parts[0];
    return first === undefined ? "0-0" : `0-${first - 1}`;
  }

  private uploadHeaders(name: string, upload: UploadHandle): Record<string, string> {
    return {
      Location: this.uploadLocation(name, upload.session.id),
      "Docker-Upload-UUID": upload.session.id,
      Range: this.staleRange(upload),
    };
  }

  /**
   * Checks `Content-Range: <first>-<last>` against the bytes received (the true count, not the
   * stale Range): another start is 416, as ECR answers clients that resume from its Range.
   */
  private expectedChunk(req: IncomingMessage, upload: UploadHandle, name: string): number | undefined {
    const header = req.headers["content-range"];
    if (header === undefined) return undefined;
    const match = /^(?:bytes[ =])?(\d+)-(\d+)$/.exec(header.trim());
    if (match === null)
      throw new RegistryError(400, "BLOB_UPLOAD_INVALID", `Invalid Content-Range '${header}'`);
    const first = Number(match[1]);
    const last = Number(match[2]);
    const { received } = upload.session;
    if (first !== received || last < first) {
      throw new RegistryError(
        416,
        "BLOB_UPLOAD_INVALID",
        `The chunk starts at byte ${first} but the upload has received ${received} bytes`,
        this.uploadHeaders(name, upload),
      );
    }
    return last - first + 1;
  }

  /** Streams the body into the upload as one part; SIZE_INVALID (and nothing kept) if it is not `expected` bytes. */
  private async appendBody(upload: UploadHandle, req: IncomingMessage, expected?: number): Promise<number> {
    const { received, parts } = upload.session;
    assertWithinUploadLimits(this.scope, parts.length + 1, received);
    const limit = this.scope.limits.maxLayerBytes - received;
    const size = await upload.appendStream(boundedBody(req, limit, () => uploadLimitExceeded(this.scope)));
    if (expected !== undefined && size !== expected) {
      if (size > 0) await upload.dropLastPart();
      throw new RegistryError(
        400,
        "SIZE_INVALID",
        `The Content-Range names ${expected} bytes but the body has ${size}`,
      );
    }
    return size;
  }

  private async patchUpload(name: string, uploadId: string, req: IncomingMessage): Promise<Reply> {
    return this.withOwnUpload(name, uploadId, async (upload) => {
      const expected = this.expectedChunk(req, upload, name);
      await this.appendBody(upload, req, expected);
      // 201 where the spec says 202: ECR's answer (ecr-spec.md section 7).
      return emptyReply(201, this.uploadHeaders(name, upload));
    });
  }

  private async putUpload(
    name: string,
    uploadId: string,
    query: URLSearchParams,
    req: IncomingMessage,
  ): Promise<Reply> {
    const digest = query.get("digest");
    if (digest === null)
      throw new RegistryError(400, "DIGEST_INVALID", "The digest query parameter is required");
    this.checkSupportedDigest(digest);
    return this.withOwnUpload(name, uploadId, async (upload, target) => {
      const expected = this.expectedChunk(req, upload, name);
      const added = await this.appendBody(upload, req, expected);
      try {
        return await this.finish(target, upload, digest);
      } catch (err) {
        // A refused PUT changes nothing: its final chunk goes, the upload stays as it was.
        if (added > 0 && err instanceof ApiError && UPLOAD_STAYS_OPEN.has(err.type))
          await upload.dropLastPart();
        throw err;
      }
    });
  }

  private async finish(target: RepositoryTarget, upload: UploadHandle, digest: string): Promise<Reply> {
    // A blob the repository already has ends the upload as a success on this API.
    await finishLayerUpload(this.scope, target, upload, [digest]);
    return emptyReply(201, {
      Location: `/v2/${target.name}/blobs/${digest}`,
      "Docker-Content-Digest": digest,
    });
  }

  private uploadStatus(name: string, uploadId: string): Promise<Reply> {
    return this.withOwnUpload(name, uploadId, async (upload) =>
      emptyReply(204, this.uploadHeaders(name, upload)),
    );
  }

  private cancelUpload(name: string, uploadId: string): Promise<Reply> {
    return this.withOwnUpload(name, uploadId, async (upload) => {
      await upload.discard();
      return emptyReply(204);
    });
  }
}

function hasUnreadBody(req: IncomingMessage): boolean {
  const declared = Number(req.headers["content-length"] ?? 0);
  return !req.complete && (declared > 0 || req.headers["transfer-encoding"] !== undefined);
}

/** Whether an Accept header takes `mediaType`: no header, `*\/*` and the type itself do. */
function accepts(header: string | undefined, mediaType: string): boolean {
  if (header === undefined || header.trim() === "") return true;
  return header
    .split(",")
    .map((item) => item.split(";")[0]!.trim().toLowerCase())
    .some((type) => type === "*/*" || type === mediaType);
}

/** `n` and `last` paging of tags/list and _catalog, with the spec's `Link` to the next page. */
function paginate(
  sorted: readonly string[],
  query: URLSearchParams,
  path: string,
): { items: string[]; headers: Record<string, string> } {
  const nText = query.get("n");
  if (nText !== null && !/^\d{1,9}$/.test(nText)) {
    throw new RegistryError(
      400,
      "PAGINATION_NUMBER_INVALID",
      `Invalid number of results requested: '${nText}'`,
    );
  }
  const last = query.get("last");
  const after = last === null ? sorted : sorted.filter((item) => item > last);
  if (nText === null) return { items: [...after], headers: {} };
  const n = Math.min(Number(nText), MAX_PAGE);
  const items = after.slice(0, n);
  const next = items.at(-1);
  if (after.length <= n || next === undefined) return { items, headers: {} };
  const link = `${path}?n=${n}&last=${encodeURIComponent(next)}`;
  return { items, headers: { Link: `<${link}>; rel="next"` } };
}
