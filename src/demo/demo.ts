import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "../emulator/server.js";
import { inspect, type InspectResult } from "../inspect.js";
import { listImages, type ImageList } from "../list.js";
import { pull, type PullResult } from "../pull.js";
import { push, type PushResult } from "../push.js";
import { MemoryBlobInfoCache } from "../transfer/blob-info-cache.js";
import type { TransferListener } from "../transfer/events.js";
import { buildSampleImage, type SampleLayer } from "./sample-image.js";

export interface DemoOptions {
  /** Layers of the generated image; default ~36 MiB in three layers. */
  layers?: SampleLayer[];
  /** Told of each step, for the terminal. */
  onStep?: (message: string) => void;
  /** Push and pull progress. */
  onEvent?: TransferListener;
  /** Shown the repository listing after the push, and the inspected image. */
  onListed?: (list: ImageList) => void;
  onInspected?: (result: InspectResult) => void;
  signal?: AbortSignal;
}

export interface DemoResult {
  reference: string;
  digest: string;
  push: PushResult;
  /** The repository as `ecrx ls` shows it after the push. */
  list: ImageList;
  /** The pushed image as `ecrx inspect` shows it. */
  inspect: InspectResult;
  pull: PullResult;
  /** Every blob and manifest pulled back matched the digest pushed. */
  verified: boolean;
}

export const DEMO_LAYERS: SampleLayer[] = [
  { size: 24 * 1024 * 1024, content: "compressible" },
  { size: 8 * 1024 * 1024, content: "random" },
  { size: 4 * 1024 * 1024, content: "compressible" },
];

/**
 * The tour on the embedded default: a local ECR in-process, a generated `docker save` tarball
 * pushed through the ECR API (its layers gzip-compressed on the way), the repository listed and
 * the image inspected as `ecrx ls` and `ecrx inspect` do, then the image pulled back into an OCI
 * layout with every digest verified. Nothing is left behind.
 */
export async function demo(options: DemoOptions = {}): Promise<DemoResult> {
  const step = options.onStep ?? (() => undefined);
  const work = await mkdtemp(join(tmpdir(), "ecrx-demo-"));
  const server = await serve({ port: 0, dataDir: join(work, "registry") });
  try {
    step(`local ECR listening on ${server.url} (registry ${server.registryHost})`);
    const layers = options.layers ?? DEMO_LAYERS;
    const sample = await buildSampleImage(join(work, "sample.tar"), layers);
    step(
      `built a docker-archive of ${layers.length} uncompressed layers, ${(sample.bytes / 1e6).toFixed(1)} MB: ${sample.path}`,
    );

    const reference = `${server.registryHost}/ecrx-demo:latest`;
    const aws = {
      region: server.region,
      credentials: {
        accessKeyId: server.env.AWS_ACCESS_KEY_ID!,
        secretAccessKey: server.env.AWS_SECRET_ACCESS_KEY!,
      },
    };
    step(`pushing to ${reference}`);
    const pushed = await push(`docker-archive:${sample.path}`, reference, {
      aws,
      createRepository: true,
      // The demo shows a first push: an on-disk cache from an earlier run would skip the compression.
      blobInfoCache: new MemoryBlobInfoCache(),
      ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });

    const repository = `${server.registryHost}/ecrx-demo`;
    step(`listing ${repository} (ecrx ls)`);
    const list = await listImages(repository, { aws, ...signalOption(options.signal) });
    options.onListed?.(list);
    step(`inspecting ${reference} (ecrx inspect)`);
    const inspected = await inspect(reference, { aws, ...signalOption(options.signal) });
    options.onInspected?.(inspected);

    const layout = join(work, "pulled");
    step(`pulling ${server.registryHost}/ecrx-demo@${pushed.digest} back into oci:${layout}`);
    const pulled = await pull(`${server.registryHost}/ecrx-demo@${pushed.digest}`, `oci:${layout}:latest`, {
      aws,
      ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    return {
      reference,
      digest: pushed.digest,
      push: pushed,
      list,
      inspect: inspected,
      pull: pulled,
      verified: pulled.digest === pushed.digest && inspected.manifest.digest === pushed.digest,
    };
  } finally {
    await server.close();
    await rm(work, { recursive: true, force: true });
  }
}

function signalOption(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal === undefined ? {} : { signal };
}
