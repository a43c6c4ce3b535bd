import { pipeline, type Readable } from "node:stream";
import pLimit from "p-limit";
import { EcrxError } from "../../errors.js";
import { HashingCounter } from "../../manifest/digest.js";
import type { Descriptor, RawManifest } from "../../manifest/types.js";
import type { BlobToPut, ImageDestination, ProgressFn } from "../types.js";
import { header, resolveLocation, type RegistryClient, type RegistryResponse } from "./client.js";

export interface RegistryDestinationOptions {
  /** A repository of the same registry to mount blobs from instead of uploading them. */
  mountFrom?: string | undefined;
  /** HEAD requests in flight at once for `missing`. Default 8. */
  checkConcurrency?: number;
  /** Blobs of a known digest and at most this size go up in one PUT. Default 4 MiB. */
  monolithicMax?: number;
}

const DEFAULT_MONOLITHIC_MAX = 4 * 1024 * 1024;

/**
 * A repository of an OCI distribution registry as an image destination.
 *
 * Upload strategy, per blob: mount from `mountFrom` when given (201: done; 202: the registry
 * started a normal upload instead, which we use); otherwise `POST` an upload session, then
 * - a small blob of known digest: one `PUT <location>?digest=` carrying the bytes;
 * - any other: one streamed `PATCH` (hashing and counting on the way, so blobs produced on the
 *   fly learn their digest here), then `PUT <location>?digest=` with no body.
 * A failed upload is not resumed here: the engine sends the whole blob again on NETWORK errors,
 * and the abandoned session is cancelled. Manifests go by digest, then under each tag.
 */
export class RegistryDestination implements ImageDestination {
  readonly reference: string;

  constructor(
    private readonly client: RegistryClient,
    reference: string,
    private readonly options: RegistryDestinationOptions = {},
  ) {
    this.reference = reference;
  }

  async missing(blobs: Descriptor[]): Promise<Descriptor[]> {
    const limit = pLimit(this.options.checkConcurrency ?? 8);
    const present = await Promise.all(blobs.map((b) => limit(() => this.has(b))));
    return blobs.filter((_, i) => !present[i]);
  }

  private async has(blob: Descriptor): Promise<boolean> {
    const res = await this.client.request({
      method: "HEAD",
      url: this.client.path(`blobs/${blob.digest}`),
      // A redirect means the registry knows the blob and would send it from elsewhere.
      expect: [200, 404, 301, 302, 303, 307, 308],
      what: `HEAD blob ${blob.digest} in ${this.client.repository}`,
    });
    await res.body.dump();
    return res.status !== 404;
  }

  async putBlob(blob: BlobToPut, body: Readable, progress: ProgressFn): Promise<Descriptor> {
    const what = `blob ${blob.digest ?? "(digest computed on the way)"} to ${this.client.repository}`;
    let location: URL;
    // A mount needs the exact descriptor: a digest alone (a diff_id of a layer decompressed on
    // the way) leaves the size unknown.
    if (blob.digest !== undefined && blob.sizeIsExact && this.options.mountFrom !== undefined) {
      const mount = await this.mount(blob.digest, this.options.mountFrom);
      if (mount === "mounted") {
        body.destroy();
        return { mediaType: blob.mediaType, digest: blob.digest, size: blob.size };
      }
      location = mount;
    } else {
      location = await this.startUpload(what);
    }
    try {
      const monolithicMax = this.options.monolithicMax ?? DEFAULT_MONOLITHIC_MAX;
      if (blob.digest !== undefined && blob.sizeIsExact && blob.size <= monolithicMax) {
        return await this.putWhole(blob as BlobToPut & { digest: string }, body, location, progress, what);
      }
      return await this.patchThenPut(blob, body, location, progress, what);
    } catch (err) {
      await this.cancel(location);
      throw err;
    }
  }

  /** `POST ?mount=&from=`: "mounted", or the Location of the upload the registry started instead. */
  private async mount(digest: string, from: string): Promise<"mounted" | URL> {
    const url = `${this.client.path("blobs/uploads/")}?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`;
    const res = await this.client.request({
      method: "POST",
      url,
      headers: { "content-length": "0" },
      expect: [201, 202],
      what: `mount blob ${digest} from ${from} into ${this.client.repository}`,
    });
    await res.body.dump();
    return res.status === 201 ? "mounted" : uploadLocation(res, `mount of ${digest}`);
  }

  private async startUpload(what: string): Promise<URL> {
    const res = await this.client.request({
      method: "POST",
      url: this.client.path("blobs/uploads/"),
      headers: { "content-length": "0" },
      expect: [202],
      what: `start upload of ${what}`,
    });
    await res.body.dump();
    return uploadLocation(res, what);
  }

  private async putWhole(
    blob: BlobToPut & { digest: string },
    body: Readable,
    location: URL,
    progress: ProgressFn,
    what: string,
  ): Promise<Descriptor> {
    const counter = new HashingCounter(progress);
    const res = await this.client.request({
      method: "PUT",
      url: withDigest(location, blob.digest),
      headers: { "content-type": "application/octet-stream", "content-length": String(blob.size) },
      body: pipeline(body, counter, () => undefined),
      expect: [201, 204],
      what: `PUT ${what}`,
    });
    await res.body.dump();
    checkStoredDigest(res, blob.digest, what);
    return { mediaType: blob.mediaType, digest: blob.digest, size: counter.bytes };
  }

  private async patchThenPut(
    blob: BlobToPut,
    body: Readable,
    location: URL,
    progress: ProgressFn,
    what: string,
  ): Promise<Descriptor> {
    const counter = new HashingCounter(progress);
    const patched = await this.client.request({
      method: "PATCH",
      url: location,
      headers: { "content-type": "application/octet-stream" },
      body: pipeline(body, counter, () => undefined),
      // ECR answers a PATCH with 201 where the spec says 202 (ecr-spec.md section 7).
      expect: [202, 201, 204],
      what: `PATCH ${what}`,
    });
    await patched.body.dump();
    // We hash sha256; a descriptor of another algorithm is checked by the registry at the PUT.
    const digest =
      blob.digest !== undefined && !blob.digest.startsWith("sha256:") ? blob.digest : counter.digest;
    const size = counter.bytes;
    if (blob.digest !== undefined && blob.digest !== digest) {
      throw new EcrxError("INTEGRITY", `${what}: the bytes sent hash to ${digest}`);
    }
    if (blob.sizeIsExact && size !== blob.size) {
      throw new EcrxError("INTEGRITY", `${what}: ${size} bytes sent, its descriptor says ${blob.size}`);
    }
    // What the registry holds is what we counted: ECR's Range header stops advancing after the
    // first PATCH (ecr-spec.md section 7), so it is no measure of the upload; the digest at the
    // final PUT is the registry's check of every byte.
    const next = header(patched.headers, "location");
    const finalUrl = next === undefined ? location : resolveLocation(next, patched.url);
    const res = await this.client.request({
      method: "PUT",
      url: withDigest(finalUrl, digest),
      headers: { "content-length": "0" },
      expect: [201, 204],
      what: `complete ${what}`,
    });
    await res.body.dump();
    checkStoredDigest(res, digest, what);
    return { mediaType: blob.mediaType, digest, size };
  }

  /** Best effort: an abandoned session would otherwise linger until the registry purges it. */
  private async cancel(location: URL): Promise<void> {
    try {
      const res = await this.client.request({
        method: "DELETE",
        url: location,
        expect: [200, 202, 204, 404],
        what: "cancel upload",
        once: true,
      });
      await res.body.dump();
    } catch {
      // The upload failed already; that error is the one to report.
    }
  }

  async putManifest(m: RawManifest, tags: string[]): Promise<void> {
    for (const ref of [m.digest, ...tags]) {
      const what = `manifest ${m.digest}${ref === m.digest ? "" : ` as ${this.client.repository}:${ref}`}`;
      const res = await this.client.request({
        method: "PUT",
        url: this.client.path(`manifests/${ref}`),
        headers: { "content-type": m.mediaType },
        body: m.bytes,
        expect: [200, 201, 202, 204],
        what: `PUT ${what} in ${this.client.registry}`,
      });
      await res.body.dump();
      const stored = header(res.headers, "docker-content-digest");
      if (stored !== undefined && stored !== m.digest) {
        throw new EcrxError(
          "INTEGRITY",
          `${what}: the registry stored it as ${stored} (it changed the bytes)`,
        );
      }
    }
  }

  async commit(): Promise<void> {}

  async close(): Promise<void> {
    await this.client.close();
  }
}

function uploadLocation(res: RegistryResponse, what: string): URL {
  const location = header(res.headers, "location");
  if (location === undefined) {
    throw new EcrxError("NETWORK", `${what}: the registry started an upload without a Location`);
  }
  return resolveLocation(location, res.url);
}

/** The upload URL with `digest=` added to whatever query (upload state) it carries. */
function withDigest(location: URL, digest: string): URL {
  const url = new URL(location);
  url.searchParams.set("digest", digest);
  return url;
}

function checkStoredDigest(res: RegistryResponse, digest: string, what: string): void {
  const stored = header(res.headers, "docker-content-digest");
  if (stored !== undefined && stored !== digest) {
    throw new EcrxError("INTEGRITY", `${what}: the registry stored ${stored}, we sent ${digest}`);
  }
}
