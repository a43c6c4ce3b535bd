/**
 * SDK clients configured for an in-process `ecrx serve`, and a minimal image push through the ECR
 * API, for integration tests of the emulator and of the clients that use it.
 */
import { createHash, randomBytes } from "node:crypto";
import {
  CompleteLayerUploadCommand,
  ECRClient,
  InitiateLayerUploadCommand,
  PutImageCommand,
  UploadLayerPartCommand,
  type ECRClientConfig,
} from "@aws-sdk/client-ecr";
import { ECRPUBLICClient, type ECRPUBLICClientConfig } from "@aws-sdk/client-ecr-public";
import type { AwsOptions } from "../../src/transports/aws/client-config.js";
import { ociImageManifest } from "./oci-manifest.js";

/** What a client needs to know of a running emulator (RunningServer and RunningFront have it). */
export interface EmulatorEndpoint {
  url: string;
  region: string;
  env: Record<string, string>;
}

function credentials(server: EmulatorEndpoint): { accessKeyId: string; secretAccessKey: string } {
  return {
    accessKeyId: server.env.AWS_ACCESS_KEY_ID ?? "test",
    secretAccessKey: server.env.AWS_SECRET_ACCESS_KEY ?? "test",
  };
}

/** The library's `aws` options (push, pull, copy) for the server: its region and credentials. */
export function awsOptionsFor(server: EmulatorEndpoint): AwsOptions {
  return { region: server.region, credentials: credentials(server) };
}

/** An ECR client for the server; one attempt unless told otherwise, so tests see every refusal. */
export function ecrClient(server: EmulatorEndpoint, config: Partial<ECRClientConfig> = {}): ECRClient {
  return new ECRClient({
    endpoint: server.url,
    region: server.region,
    credentials: credentials(server),
    maxAttempts: 1,
    ...config,
  });
}

/** An ECR Public client for the server (its API lives in us-east-1). */
export function ecrPublicClient(
  server: EmulatorEndpoint,
  config: Partial<ECRPUBLICClientConfig> = {},
): ECRPUBLICClient {
  return new ECRPUBLICClient({
    endpoint: server.url,
    region: "us-east-1",
    credentials: credentials(server),
    maxAttempts: 1,
    ...config,
  });
}

export function sha256Digest(data: Uint8Array): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** Uploads one blob through InitiateLayerUpload / UploadLayerPart / CompleteLayerUpload. */
export async function uploadBlob(
  client: ECRClient,
  repositoryName: string,
  blob: Uint8Array,
  partSize = 10 * 1024 * 1024,
): Promise<string> {
  const digest = sha256Digest(blob);
  const { uploadId } = await client.send(new InitiateLayerUploadCommand({ repositoryName }));
  for (let first = 0; first < blob.length; first += partSize) {
    const part = blob.subarray(first, Math.min(blob.length, first + partSize));
    await client.send(
      new UploadLayerPartCommand({
        repositoryName,
        uploadId,
        partFirstByte: first,
        partLastByte: first + part.length - 1,
        layerPartBlob: part,
      }),
    );
  }
  await client.send(new CompleteLayerUploadCommand({ repositoryName, uploadId, layerDigests: [digest] }));
  return digest;
}

export interface PushedImage {
  layer: Buffer;
  layerDigest: string;
  configDigest: string;
  manifest: string;
  manifestDigest: string;
}

/** Pushes a one-layer OCI image (random layer bytes) into an existing repository. */
export async function pushTestImage(
  client: ECRClient,
  repositoryName: string,
  options: { tag?: string; layerSize?: number } = {},
): Promise<PushedImage> {
  const layer = randomBytes(options.layerSize ?? 4096);
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: [sha256Digest(layer)] },
    }),
  );
  const layerDigest = await uploadBlob(client, repositoryName, layer);
  const configDigest = await uploadBlob(client, repositoryName, config);
  const manifest = ociImageManifest({ digest: configDigest, size: config.length }, [
    { digest: layerDigest, size: layer.length },
  ]);
  await client.send(
    new PutImageCommand({
      repositoryName,
      imageManifest: manifest,
      ...(options.tag ? { imageTag: options.tag } : {}),
    }),
  );
  return { layer, layerDigest, configDigest, manifest, manifestDigest: sha256Digest(Buffer.from(manifest)) };
}
