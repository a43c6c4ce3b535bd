import { InvalidArgumentError, Option, type Command } from "commander";
import { copy } from "../../copy.js";
import type { RegistryCredentials } from "../../transports/registry/credentials.js";
import type { SideOptions } from "../../transports/resolve.js";
import {
  addAwsOptions,
  awsOptionsFrom,
  concurrencyOption,
  outputOptions,
  sizeArgument,
  type TransferFlags,
} from "../common.js";
import { runTransfer, transferFigures } from "../progress.js";
import { DEFAULT_UPLOAD_CONCURRENCY } from "../../transfer/engine.js";

interface SideFlags {
  profile?: string;
  region?: string;
  endpointUrl?: string;
  creds?: RegistryCredentials;
  insecure?: boolean;
}

/** The per-side flags (`--src-*`, `--dest-*`) are read from the raw options by sideFlags. */
interface CopyFlags extends TransferFlags {
  via: "api" | "registry";
}

/** `USER:PASSWORD` as skopeo's --src-creds takes it; a bare token (no colon) is a bearer token. */
export function credentialsArgument(value: string): RegistryCredentials {
  const colon = value.indexOf(":");
  if (colon === 0) throw new InvalidArgumentError("the user name is empty");
  return colon < 0 ? { token: value } : { username: value.slice(0, colon), password: value.slice(colon + 1) };
}

/** Adds the options of one side (`src` or `dest`) of a copy. */
export function addSideOptions(command: Command, side: "src" | "dest"): Command {
  addAwsOptions(command, side);
  return command
    .option(
      `--${side}-creds <user:password>`,
      `registry credentials of the ${side === "src" ? "source" : "destination"} (default: docker's config)`,
      credentialsArgument,
    )
    .option(
      `--${side}-insecure`,
      `allow plain http or unverified TLS to the ${side === "src" ? "source" : "destination"} registry`,
    );
}

/** Commander gives `srcProfile`, `destCreds`, ...: regroup them per side. */
export function sideFlags(flags: Record<string, unknown>, side: "src" | "dest"): SideFlags {
  const get = <T>(name: string) => flags[`${side}${name}`] as T | undefined;
  return {
    ...(get<string>("Profile") === undefined ? {} : { profile: get<string>("Profile")! }),
    ...(get<string>("Region") === undefined ? {} : { region: get<string>("Region")! }),
    ...(get<string>("EndpointUrl") === undefined ? {} : { endpointUrl: get<string>("EndpointUrl")! }),
    ...(get<RegistryCredentials>("Creds") === undefined ? {} : { creds: get<RegistryCredentials>("Creds")! }),
    ...(get<boolean>("Insecure") === undefined ? {} : { insecure: get<boolean>("Insecure")! }),
  };
}

export function sideOptions(flags: SideFlags, via: "api" | "registry"): SideOptions {
  return {
    aws: awsOptionsFrom(flags),
    via,
    ...(flags.creds === undefined ? {} : { credentials: flags.creds }),
    ...(flags.insecure === undefined ? {} : { insecure: flags.insecure }),
  };
}

export function registerCopy(program: Command): void {
  const command = program
    .command("copy")
    .summary("copy an image between registries, ECR repositories, regions, accounts and files")
    .description(
      "Copy an image from any source to any destination: ECR (through the ECR API, or its registry endpoint with --via registry), ECR Public, any OCI/Docker v2 registry, docker-archive, OCI layout and OCI archive. Blobs stream without temporary files, blobs the destination has are skipped, and manifest bytes are carried verbatim, so digests are kept. Each side has its own credentials and endpoint.",
    )
    .argument(
      "<source>",
      "an image reference: registry, ECR, ECR Public, docker://…, docker-archive:, oci:, oci-archive:",
    )
    .argument("<destination>", "an image reference")
    .addOption(
      new Option("--via <api>", "for ECR hosts: the ECR API or the registry (v2) endpoint")
        .choices(["api", "registry"])
        .default("api"),
    )
    .option("--create-repo", "create the ECR destination repository when it does not exist")
    .option("--immutable", "with --create-repo: IMMUTABLE tags")
    .option(
      "-t, --tag <tag>",
      "another tag at the destination (repeatable)",
      (v: string, all: string[]) => [...all, v],
      [],
    )
    .option(
      "--platform <os/arch[/variant]>",
      "copy one platform of a multi-platform image (its digest is that image's)",
    )
    .addOption(
      new Option(
        "--compression <mode>",
        "keep: change no blob (digests kept); gzip|zstd: compress uncompressed layers; none: decompress",
      )
        .choices(["keep", "gzip", "zstd", "none"])
        .default("keep"),
    )
    .addOption(concurrencyOption(String(DEFAULT_UPLOAD_CONCURRENCY)))
    .addOption(
      new Option("--part-size <size>", "UploadLayerPart size for ECR destinations, 5MiB..20MiB")
        .env("ECRX_PART_SIZE")
        .argParser(sizeArgument),
    );
  addSideOptions(command, "src");
  addSideOptions(command, "dest");
  outputOptions(command);
  command.addHelpText(
    "after",
    `
Examples:
  $ ecrx copy 111111111111.dkr.ecr.us-east-1.amazonaws.com/app:1.4 222222222222.dkr.ecr.eu-west-1.amazonaws.com/app:1.4 --dest-profile prod
  $ ecrx copy docker.io/library/alpine:3.20 123456789012.dkr.ecr.eu-west-1.amazonaws.com/alpine:3.20 --create-repo
  $ ecrx copy 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1.4 registry.example.com/app:1.4 --dest-creds ci:secret
  $ ecrx copy ghcr.io/org/tool:2 oci:./tool:2 --platform linux/arm64`,
  );
  command.action(async (source: string, destination: string, raw: Record<string, unknown>) => {
    const flags = raw as unknown as CopyFlags;
    await runTransfer(
      flags,
      "copy",
      (onEvent, signal) =>
        copy(source, destination, {
          source: sideOptions(sideFlags(raw, "src"), flags.via),
          destination: {
            ...sideOptions(sideFlags(raw, "dest"), flags.via),
            createRepository: flags.createRepo ?? false,
            immutable: flags.immutable ?? false,
            ...(flags.partSize === undefined ? {} : { partSize: flags.partSize }),
          },
          compression: flags.compression,
          tags: flags.tag,
          onEvent,
          signal,
          ...(flags.concurrency === undefined ? {} : { concurrency: flags.concurrency }),
          ...(flags.platform === undefined ? {} : { platform: flags.platform }),
        }),
      (result) => ({
        summary: `copied ${result.source} to ${result.destination} (${result.digest}): ${transferFigures(result)}`,
        stdout: `${result.destination}@${result.digest}`,
      }),
    );
  });
}
