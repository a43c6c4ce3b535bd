import { push } from "../push.js";
import type { CompressionMode } from "../transfer/engine.js";
import type { AwsOptions } from "../transports/aws/client-config.js";

/** What one measured push is told: the runner process receives it as JSON. */
export interface PushRunSpec {
  source: string;
  destination: string;
  partSize: number;
  concurrency: number;
  compression: CompressionMode;
  createRepository: boolean;
  aws: Pick<AwsOptions, "region" | "endpointUrl" | "profile">;
}

/** The raw figures of one push, all of the process that ran it. */
export interface PushRunFigures {
  digest: string;
  repository: string;
  /** Wall time of the push (process start-up excluded), seconds. */
  seconds: number;
  /** Source bytes of the layers sent (before compression on the way, if any). */
  layerBytes: number;
  /** Bytes of every blob sent, as uploaded. */
  bytesSent: number;
  blobsSent: number;
  blobsSkipped: number;
  /** Successful UploadLayerPart calls. */
  parts: number;
  /** Latency of each successful UploadLayerPart attempt, ms. */
  partLatenciesMs: number[];
  /** CPU of the whole process (every thread) during the push, seconds. */
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
 * Runs one push in this process and measures it: time and CPU around the push, the peak RSS of
 * the process, every UploadLayerPart attempt (through AwsOptions.onCall) and every retry. Meant to
 * run alone in a fresh process (push-runner.ts), so that the CPU and memory are this push's only.
 */
export async function measurePush(spec: PushRunSpec): Promise<PushRunFigures> {
  const partLatenciesMs: number[] = [];
  let retries = 0;
  let throttles = 0;
  let blobRetries = 0;
  let layerBytes = 0;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const result = await push(spec.source, spec.destination, {
    aws: {
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
    },
    partSize: spec.partSize,
    concurrency: spec.concurrency,
    compression: spec.compression,
    createRepository: spec.createRepository,
    // A cache of earlier runs' compressions would let a run skip work the benchmark is to time.
    blobInfoCache: false,
    onEvent: (event) => {
      if (event.type === "blob-start" && !event.mediaType.includes("config")) layerBytes += event.size;
      if (event.type === "blob-retry") blobRetries++;
    },
  });
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
