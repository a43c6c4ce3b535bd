/**
 * Raw requests to the emulator's registry (OCI distribution v2) API with undici, for tests that
 * check status codes and headers exactly (no client library smoothing them over).
 */
import { createHash } from "node:crypto";
import { request } from "undici";
import { ociImageManifest } from "./oci-manifest.js";

export interface RegistryEndpoint {
  url: string;
  registryPassword(): string;
}

export interface RegistryAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** The OCI error code of an error answer. */
  code: string | undefined;
}

export function basicAuth(password: string): string {
  return `Basic ${Buffer.from(`AWS:${password}`).toString("base64")}`;
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** A request under the server's URL; authenticated with a fresh password unless `auth` says otherwise. */
export async function v2(
  server: RegistryEndpoint,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: Buffer | string; auth?: string | false } = {},
): Promise<RegistryAnswer> {
  const auth = options.auth === undefined ? basicAuth(server.registryPassword()) : options.auth;
  const response = await request(`${server.url}${path}`, {
    method: method as "GET",
    headers: { ...(auth === false ? {} : { authorization: auth }), ...options.headers },
    ...(options.body === undefined ? {} : { body: options.body }),
  });
  const body = Buffer.from(await response.body.arrayBuffer());
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  let code: string | undefined;
  if (response.statusCode >= 400 && body.length > 0) {
    code = (JSON.parse(body.toString("utf8")) as { errors: { code: string }[] }).errors[0]?.code;
  }
  return { status: response.statusCode, headers, body, code };
}

/** Pushes a blob with one monolithic `POST ?digest=`; returns its digest. */
export async function pushBlob(server: RegistryEndpoint, repository: string, blob: Buffer): Promise<string> {
  const digest = sha256(blob);
  const answer = await v2(server, "POST", `/v2/${repository}/blobs/uploads/?digest=${digest}`, {
    body: blob,
    headers: { "content-type": "application/octet-stream" },
  });
  if (answer.status !== 201)
    throw new Error(`blob push answered ${answer.status}: ${answer.body.toString()}`);
  return digest;
}

export interface RegistryImage {
  manifest: string;
  digest: string;
  configDigest: string;
  layer: Buffer;
  layerDigest: string;
}

/** An OCI image manifest over a pushed config and layer (not pushed itself). */
export async function prepareImage(
  server: RegistryEndpoint,
  repository: string,
  extra: Record<string, unknown> = {},
  layer: Buffer = Buffer.from(`layer of ${repository} ${Math.random()}`),
): Promise<RegistryImage> {
  const config = Buffer.from(
    JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers" } }),
  );
  const layerDigest = await pushBlob(server, repository, layer);
  const configDigest = await pushBlob(server, repository, config);
  const manifest = ociImageManifest(
    { digest: configDigest, size: config.length },
    [{ digest: layerDigest, size: layer.length }],
    extra,
  );
  return { manifest, digest: sha256(manifest), configDigest, layer, layerDigest };
}

export async function putManifest(
  server: RegistryEndpoint,
  repository: string,
  reference: string,
  manifest: string,
  mediaType = "application/vnd.oci.image.manifest.v1+json",
): Promise<RegistryAnswer> {
  return v2(server, "PUT", `/v2/${repository}/manifests/${reference}`, {
    body: manifest,
    headers: { "content-type": mediaType },
  });
}
