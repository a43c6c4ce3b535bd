import { InvalidArgumentError, Option, type Command } from "commander";
import { EcrxError } from "../errors.js";
import type { AwsOptions } from "../transports/aws/client-config.js";
import type { CompressionMode } from "../transfer/engine.js";
import { parseSize } from "../transfer/part-size.js";

/** The flags push and copy share, as commander gives them. */
export interface TransferFlags {
  createRepo?: boolean;
  immutable?: boolean;
  concurrency?: number;
  partSize?: number;
  compression: CompressionMode;
  platform?: string;
  tag: string[];
  json?: boolean;
  quiet?: boolean;
}

/** Options every command that talks to AWS shares. */
export interface AwsFlags {
  profile?: string;
  region?: string;
  endpointUrl?: string;
}

export function addAwsOptions(command: Command, prefix = ""): Command {
  const p = prefix ? `${prefix}-` : "";
  return command
    .option(`--${p}profile <name>`, "AWS profile of the shared config files (default: AWS_PROFILE)")
    .option(`--${p}region <region>`, "AWS region (default: the one in the registry host name)")
    .option(
      `--${p}endpoint-url <url>`,
      "ECR API endpoint (default: AWS_ENDPOINT_URL_ECR / AWS_ENDPOINT_URL_ECR_PUBLIC, else AWS)",
    );
}

export function awsOptionsFrom(flags: AwsFlags): AwsOptions {
  return {
    ...(flags.profile === undefined ? {} : { profile: flags.profile }),
    ...(flags.region === undefined ? {} : { region: flags.region }),
    ...(flags.endpointUrl === undefined ? {} : { endpointUrl: flags.endpointUrl }),
  };
}

export function positiveInt(name: string, max = 1024) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max) {
      throw new InvalidArgumentError(`${name} must be a whole number from 1 to ${max}`);
    }
    return n;
  };
}

export function sizeArgument(value: string): number {
  try {
    return parseSize(value);
  } catch (err) {
    throw new InvalidArgumentError(err instanceof Error ? err.message : String(err));
  }
}

export function concurrencyOption(defaultText: string): Option {
  return new Option("--concurrency <n>", `blobs in flight at once (default ${defaultText})`)
    .env("ECRX_CONCURRENCY")
    .argParser(positiveInt("--concurrency", 256));
}

export function outputOptions(command: Command): Command {
  return command
    .option("--json", "print NDJSON events and a final summary on stdout")
    .option("-q, --quiet", "print nothing but errors");
}

/**
 * Runs `work` with an AbortSignal that the first Ctrl-C (or SIGTERM) fires; a second one exits at
 * once. The interrupted work ends with INTERRUPTED (exit code 130).
 */
export async function withInterrupt<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = (name: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write(`\necrx: ${name}: stopping; nothing half-done is left behind\n`);
    controller.abort(new EcrxError("INTERRUPTED", `interrupted by ${name}`));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    return await work(controller.signal);
  } catch (err) {
    if (controller.signal.aborted) throw new EcrxError("INTERRUPTED", "interrupted", { cause: err });
    throw err;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
