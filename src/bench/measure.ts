import { pull } from "../pull.js";
import { push } from "../push.js";
import type { CompressionMode } from "../transfer/engine.js";
import type { TransferListener } from "../transfer/events.js";
import type { AwsOptions } from "../transports/aws/client-config.js";

type BenchAws = Pick<AwsOptions, "region" | "endpointUrl" | "profile">;

/** What one measured push is told: the runner process receives it as JSON. */
export interface PushRunSpec {
  kind: "push";
  source: string;
  destination: string;
  partSize: number;
  readAhead: number;
  concurrency: number;
  compression: CompressionMode;
  createRepository: boolean;
  aws: BenchAws;
}

/** What one measured pull is told: the image `source` into a new OCI layout at `destination`. */
export interface PullRunSpec {
  kind: "pull";
  source: string;
  destination: string;
  concurrency: number;
  rangeSize: number;
  rangeParallel: number;
  aws: BenchAws;
}

export type RunSpec = PushRunSpec | PullRunSpec;

/** The raw figures of one push or pull, all of the process that ran it. */
export interface RunFigures {
  digest: string;
  /** The repository pushed to (`registry/repository`), or the image pulled. */
  repository: string;
  /** Wall time of the transfer (process start-up excluded), seconds. */
  seconds: number;
  /** Source bytes of the layers (before compression on the way, if any). */
  layerBytes: number;
  /** Bytes of every blob moved, as uploaded or downloaded. */
  bytesSent: number;
  blobsSent: number;
  blobsSkipped: number;
  /** Successful UploadLayerPart calls (none in a pull). */
  parts: number;
  /** Latency of each successful UploadLayerPart attempt, ms. */
  partLatenciesMs: number[];
  /** CPU of the whole process (every thread) during the transfer, seconds. */
  cpuUserSeconds: number;
  cpuSystemSeconds: number;
  /** Peak resident set of the process, bytes. */
  maxRssBytes: number;
  /** SDK-level retries of any call, of which throttles were throttling answers. */
  retries: number;
  throttles: number;
  /** Whole-blob retries by the engine. */
  blobRetries: number;
}

/**
 * Runs one push or pull in this process and measures it: time and CPU around it, the peak RSS of
 * the process, every UploadLayerPart attempt (through AwsOptions.onCall) and every retry. Meant to
 * run alone in a fresh process (runner.ts), so that the CPU and memory are this transfer's only.
 */
export async function measureRun(spec: RunSpec): Promise<RunFigures> {
  const partLatenciesMs: number[] = [];
  let retries = 0;
  let throttles = 0;
  let blobRetries = 0;
  let layerBytes = 0;
  const aws: AwsOptions = {
    ...spec.aws,
    onCall: (call) => {
      if (call.operation === "UploadLayerPart" && call.error === undefined) {
        partLatenciesMs.push(Math.round(call.milliseconds * 10) / 10);
      }
    },
    retry: {
      onRetry: (info) => {
        retries++;
        if (info.errorType === "THROTTLING") throttles++;
      },
    },
  };
  const onEvent: TransferListener = (event) => {
    if (event.type === "blob-start" && !event.mediaType.includes("config")) layerBytes += event.size;
    if (event.type === "blob-retry") blobRetries++;
  };
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const result =
    spec.kind === "push"
      ? await push(spec.source, spec.destination, {
          aws,
          partSize: spec.partSize,
          readAhead: spec.readAhead,
          concurrency: spec.concurrency,
          compression: spec.compression,
          createRepository: spec.createRepository,
          // A cache of earlier runs' compressions would let a run skip work the benchmark is to time.
          blobInfoCache: false,
          onEvent,
        })
      : {
          ...(await pull(spec.source, spec.destination, {
            aws,
            concurrency: spec.concurrency,
            download: { rangeSize: spec.rangeSize, parallel: spec.rangeParallel },
            onEvent,
          })),
          repository: spec.source,
        };
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return {
    digest: result.digest,
    repository: result.repository,
    seconds,
    layerBytes,
    bytesSent: result.bytesSent,
    blobsSent: result.blobsSent,
    blobsSkipped: result.blobsSkipped,
    parts: partLatenciesMs.length,
    partLatenciesMs,
    cpuUserSeconds: cpu.user / 1e6,
    cpuSystemSeconds: cpu.system / 1e6,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    retries,
    throttles,
    blobRetries,
  };
}
