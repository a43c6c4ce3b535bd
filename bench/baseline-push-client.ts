/**
 * The baseline of the push benchmarks: a minimal client that sends the same bytes to the same
 * server in the simplest correct way: the plain AWS SDK (its own JSON serializer), one blob at a
 * time, 10 MiB parts read from the file and uploaded one after the other, then PutImage.
 *
 *   tsx bench/baseline-push-client.ts <endpoint> <repository> <oci-layout-dir>
 */
import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  CompleteLayerUploadCommand,
  CreateRepositoryCommand,
  ECRClient,
  InitiateLayerUploadCommand,
  PutImageCommand,
  UploadLayerPartCommand,
} from "@aws-sdk/client-ecr";

const [endpoint, repositoryName, layout] = process.argv.slice(2);
if (!endpoint || !repositoryName || !layout)
  throw new Error("usage: baseline-push-client <endpoint> <repository> <layout>");
const PART = 10 * 1024 * 1024;
const client = new ECRClient({ endpoint, region: "us-east-1" });
const blobFile = (digest: string) => join(layout, "blobs", "sha256", digest.slice("sha256:".length));

const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as {
  manifests: { digest: string }[];
};
const manifestBytes = await readFile(blobFile(index.manifests[0]!.digest));
const manifest = JSON.parse(manifestBytes.toString("utf8")) as {
  config: { digest: string; size: number };
  layers: { digest: string; size: number }[];
};

const started = performance.now();
await client.send(new CreateRepositoryCommand({ repositoryName }));
let bytes = 0;
for (const blob of [manifest.config, ...manifest.layers]) {
  const { uploadId } = await client.send(new InitiateLayerUploadCommand({ repositoryName }));
  const file = await open(blobFile(blob.digest));
  for (let offset = 0; offset < blob.size; offset += PART) {
    const length = Math.min(PART, blob.size - offset);
    const part = Buffer.allocUnsafe(length);
    await file.read(part, 0, length, offset);
    await client.send(
      new UploadLayerPartCommand({
        repositoryName,
        uploadId,
        partFirstByte: offset,
        partLastByte: offset + length - 1,
        layerPartBlob: part,
      }),
    );
  }
  await file.close();
  await client.send(
    new CompleteLayerUploadCommand({ repositoryName, uploadId, layerDigests: [blob.digest] }),
  );
  bytes += blob.size;
}
await client.send(
  new PutImageCommand({ repositoryName, imageManifest: manifestBytes.toString("utf8"), imageTag: "bench" }),
);
const seconds = (performance.now() - started) / 1000;
client.destroy();
process.stdout.write(`${JSON.stringify({ seconds, bytes })}\n`);
