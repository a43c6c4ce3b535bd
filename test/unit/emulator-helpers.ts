/* eslint-disable @typescript-eslint/no-explicit-any -- operation outputs are untyped wire JSON */
/** Test fixtures for the emulator's operations: a store on a temp dir, both services, a fake context. */
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import {
  ApiError,
  type OperationTable,
  type RequestContext,
  type ServiceName,
} from "../../src/emulator/api.js";
import { createEcrOperations } from "../../src/emulator/ecr-api.js";
import { createEcrPublicOperations } from "../../src/emulator/ecr-public-api.js";
import { Store } from "../../src/emulator/store.js";

export const ACCOUNT = "123456789012";
export const REGION = "eu-west-1";
export const ALIAS = "myalias";

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

export type Out = Record<string, any>;

export class Env {
  now = new Date("2026-01-02T03:04:05.000Z");
  ecr!: OperationTable;
  pub!: OperationTable;
  store!: Store;

  private constructor(readonly dir: string) {}

  static async create(): Promise<Env> {
    const env = new Env(await mkdtemp(join(tmpdir(), "ecrx-emulator-")));
    await env.open();
    return env;
  }

  async open(): Promise<void> {
    this.store = await Store.open({ dir: this.dir });
    this.ecr = createEcrOperations(this.store, { accountId: ACCOUNT, region: REGION });
    this.pub = createEcrPublicOperations(this.store, { accountId: ACCOUNT, registryAlias: ALIAS });
  }

  /** Closes and reopens the store on the same directory, like a server restart. */
  async restart(): Promise<void> {
    await this.store.close();
    await this.open();
  }

  async dispose(): Promise<void> {
    await this.store.close();
    await rm(this.dir, { recursive: true, force: true });
  }

  ctx(service: ServiceName): RequestContext {
    return {
      service,
      region: REGION,
      accountId: ACCOUNT,
      now: this.now,
      downloadUrl: (digest) => `http://127.0.0.1:1/blob/${digest}?sig=x`,
    };
  }

  async call(op: string, input: Record<string, unknown>): Promise<Out> {
    const handler = this.ecr[op];
    if (handler === undefined) throw new Error(`no private operation ${op}`);
    return await handler(input, this.ctx("ecr"));
  }

  async callPublic(op: string, input: Record<string, unknown>): Promise<Out> {
    const handler = this.pub[op];
    if (handler === undefined) throw new Error(`no public operation ${op}`);
    return await handler(input, this.ctx("ecr-public"));
  }

  async createRepo(repositoryName: string, extra: Record<string, unknown> = {}): Promise<Out> {
    return this.call("CreateRepository", { repositoryName, ...extra });
  }

  /** Pushes `data` as one layer through the upload operations; returns its digest. */
  async pushBlob(
    repositoryName: string,
    data: Buffer | string,
    service: ServiceName = "ecr",
  ): Promise<string> {
    const bytes = Buffer.from(data);
    const call = service === "ecr" ? this.call.bind(this) : this.callPublic.bind(this);
    const { uploadId } = await call("InitiateLayerUpload", { repositoryName });
    await call("UploadLayerPart", {
      repositoryName,
      uploadId,
      partFirstByte: 0,
      partLastByte: bytes.length - 1,
      layerPartBlob: bytes.toString("base64"),
    });
    const done = await call("CompleteLayerUpload", {
      repositoryName,
      uploadId,
      layerDigests: [sha256(bytes)],
    });
    return done.layerDigest as string;
  }

  /** Pushes a config and layers, then an OCI manifest naming them; returns manifest text and digest. */
  async pushImage(
    repositoryName: string,
    options: { tag?: string; layers?: string[]; config?: string; service?: ServiceName } = {},
  ): Promise<{ manifest: string; digest: string; layerDigests: string[]; configDigest: string }> {
    const service = options.service ?? "ecr";
    const config = options.config ?? `{"architecture":"amd64","os":"linux","n":${Math.random()}}`;
    const configDigest = await this.pushBlob(repositoryName, config, service);
    const layers = options.layers ?? [`layer-${Math.random()}`];
    const layerDigests: string[] = [];
    for (const layer of layers) layerDigests.push(await this.pushBlob(repositoryName, layer, service));
    const manifest = ociManifest(
      { digest: configDigest, size: Buffer.byteLength(config) },
      layers.map((l, i) => ({ digest: layerDigests[i]!, size: Buffer.byteLength(l) })),
    );
    const call = service === "ecr" ? this.call.bind(this) : this.callPublic.bind(this);
    await call("PutImage", {
      repositoryName,
      imageManifest: manifest,
      ...(options.tag === undefined ? {} : { imageTag: options.tag }),
    });
    return { manifest, digest: sha256(manifest), layerDigests, configDigest };
  }
}

export function ociManifest(
  config: { digest: string; size: number; mediaType?: string },
  layers: { digest: string; size: number; mediaType?: string }[],
  extra: Record<string, unknown> = {},
): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: config.mediaType ?? "application/vnd.oci.image.config.v1+json", ...config },
    layers: layers.map((l) => ({
      mediaType: l.mediaType ?? "application/vnd.oci.image.layer.v1.tar+gzip",
      ...l,
    })),
    ...extra,
  });
}

export function ociIndex(children: { digest: string; size: number }[]): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: children.map((c) => ({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      ...c,
      platform: { architecture: "amd64", os: "linux" },
    })),
  });
}

/** Awaits a rejection with the given AWS error type; returns the error for further checks. */
export async function expectApiError(
  promise: Promise<unknown>,
  type: string,
  message?: RegExp,
): Promise<ApiError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${type}`).toBeInstanceOf(ApiError);
  const apiError = err as ApiError;
  expect(apiError.type).toBe(type);
  if (message !== undefined) expect(apiError.message).toMatch(message);
  return apiError;
}
