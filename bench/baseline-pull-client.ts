/**
 * The baseline of the pull benchmarks: the same blobs fetched from the same server in the simplest
 * correct way: for each blob in turn, GetDownloadUrlForLayer, one plain GET of the URL and a
 * sha256 of the body, compared with the digest. Nothing written to disk.
 *
 *   tsx bench/baseline-pull-client.ts <endpoint> <repository> <tag>
 */
import { createHash } from "node:crypto";
import { BatchGetImageCommand, ECRClient, GetDownloadUrlForLayerCommand } from "@aws-sdk/client-ecr";
import { request } from "undici";

const [endpoint, repositoryName, imageTag] = process.argv.slice(2);
if (!endpoint || !repositoryName || !imageTag)
  throw new Error("usage: baseline-pull-client <endpoint> <repository> <tag>");
const client = new ECRClient({ endpoint, region: "us-east-1" });

const started = performance.now();
const image = await client.send(new BatchGetImageCommand({ repositoryName, imageIds: [{ imageTag }] }));
const manifest = JSON.parse(image.images![0]!.imageManifest!) as {
  config: { digest: string; size: number };
  layers: { digest: string; size: number }[];
};
let bytes = 0;
for (const blob of [manifest.config, ...manifest.layers]) {
  const { downloadUrl } = await client.send(
    new GetDownloadUrlForLayerCommand({ repositoryName, layerDigest: blob.digest }),
  );
  const response = await request(downloadUrl!);
  const hash = createHash("sha256");
  for await (const chunk of response.body) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  if (`sha256:${hash.digest("hex")}` !== blob.digest) throw new Error(`digest mismatch for ${blob.digest}`);
}
const seconds = (performance.now() - started) / 1000;
client.destroy();
process.stdout.write(`${JSON.stringify({ seconds, bytes })}\n`);
