import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import type {
  AwsCredentialIdentity,
  AwsCredentialIdentityProvider,
  DeserializeHandler,
  DeserializeHandlerArguments,
  HandlerExecutionContext,
  MetadataBearer,
  Pluggable,
} from "@smithy/types";
import { FullJitterRetryStrategy, type RetryPolicyOptions } from "./retry.js";

/** How to reach and authenticate to an AWS service; every field is optional. */
export interface AwsOptions {
  /** Default: the region in the registry host name, else the SDK's chain (AWS_REGION, profile). */
  region?: string;
  /** Default: the SDK's own resolution (AWS_ENDPOINT_URL_ECR / AWS_ENDPOINT_URL_ECR_PUBLIC, profile). */
  endpointUrl?: string;
  /** A profile of the shared config files; default: AWS_PROFILE or `default`. */
  profile?: string;
  /** Default: the SDK's credential chain (environment, SSO, profiles, container and instance roles). */
  credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  retry?: RetryPolicyOptions;
  /** Sockets per client. Default 64: enough for every blob and read-ahead in flight. */
  maxSockets?: number;
  /** Told of every HTTP attempt of every call, for benchmarks and `--debug`. */
  onCall?: CallObserver;
}

export interface CallInfo {
  /** The operation, e.g. `UploadLayerPart`. */
  operation: string;
  /** Time from sending the request to having its answer. */
  milliseconds: number;
  /** The exception name when the attempt failed. */
  error: string | undefined;
}
export type CallObserver = (call: CallInfo) => void;

/** Times each attempt (retries included) between the request going out and its answer parsed. */
export function callObserverPlugin(onCall: CallObserver): Pluggable<object, MetadataBearer> {
  return {
    applyToStack(stack) {
      stack.add(
        (next: DeserializeHandler<object, MetadataBearer>, context: HandlerExecutionContext) =>
          async (args: DeserializeHandlerArguments<object>) => {
            const operation = (context.commandName ?? "").replace(/Command$/, "");
            const started = performance.now();
            try {
              const out = await next(args);
              onCall({ operation, milliseconds: performance.now() - started, error: undefined });
              return out;
            } catch (err) {
              const name = err instanceof Error ? err.name : "Error";
              onCall({ operation, milliseconds: performance.now() - started, error: name });
              throw err;
            }
          },
        { step: "deserialize", name: "ecrxCallObserver" },
      );
    },
  };
}

/** The configuration every ecrx SDK client shares. */
export function sdkClientConfig(options: AwsOptions, region: string | undefined) {
  const maxSockets = options.maxSockets ?? 64;
  return {
    ...(region === undefined ? {} : { region }),
    ...(options.endpointUrl === undefined ? {} : { endpoint: options.endpointUrl }),
    ...(options.profile === undefined ? {} : { profile: options.profile }),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    retryStrategy: new FullJitterRetryStrategy(options.retry),
    requestHandler: new NodeHttpHandler({
      connectionTimeout: 10_000,
      // An idle socket for this long means a stalled peer: fail the attempt so it is retried.
      socketTimeout: 120_000,
      httpAgent: new HttpAgent({ keepAlive: true, maxSockets }),
      httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets }),
    }),
  };
}
