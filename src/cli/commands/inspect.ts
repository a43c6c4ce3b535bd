import { Option, type Command } from "commander";
import { EcrxError } from "../../errors.js";
import { inspect, type InspectResult } from "../../inspect.js";
import type { RegistryCredentials } from "../../transports/registry/credentials.js";
import { addAwsOptions, awsOptionsFrom, withInterrupt, type AwsFlags } from "../common.js";
import { formatBytes } from "../format.js";
import { formatFields, formatTable } from "../tables.js";
import { credentialsArgument } from "./copy.js";

interface InspectFlags extends AwsFlags {
  raw?: boolean;
  config?: boolean;
  json?: boolean;
  platform?: string;
  via: "api" | "registry";
  creds?: RegistryCredentials;
  insecure?: boolean;
}

export function registerInspect(program: Command): void {
  const command = program
    .command("inspect")
    .summary("show an image's manifest, config and layers, or an index's platforms")
    .description(
      "Show what an image is without downloading a layer: its manifest (media type, digest, size), its config (platform, created, entrypoint, cmd, env, labels) and its layers, or for a multi-platform index the images it holds. Works on every transport: ECR, ECR Public, any registry, docker-archive, oci and oci-archive.",
    )
    .argument("<image>", "an image reference of any transport")
    .option("--raw", "print the manifest bytes exactly as stored")
    .option("--config", "print the image config JSON")
    .option("--platform <os/arch[/variant]>", "inspect this platform of a multi-platform image")
    .option("--json", "print the result as one JSON document")
    .addOption(
      new Option("--via <api>", "for ECR hosts: the ECR API or the registry (v2) endpoint")
        .choices(["api", "registry"])
        .default("api"),
    )
    .option("--creds <user:password>", "registry credentials (default: docker's config)", credentialsArgument)
    .option("--insecure", "allow plain http or unverified TLS to the registry");
  addAwsOptions(command);
  command.addHelpText(
    "after",
    `
Examples:
  $ ecrx inspect 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1.4
  $ ecrx inspect 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1.4 --platform linux/arm64
  $ ecrx inspect oci:./layout:v2 --raw | sha256sum      # the manifest's digest
  $ ecrx inspect docker-archive:app.tar --config | jq .config.Env
  $ ecrx inspect docker.io/library/alpine:3.20 --json`,
  );
  command.action(async (image: string, flags: InspectFlags) => {
    if (flags.raw && flags.config) throw new EcrxError("USAGE", "--raw and --config exclude each other");
    const result = await withInterrupt((signal) =>
      inspect(image, {
        aws: awsOptionsFrom(flags),
        via: flags.via,
        signal,
        ...(flags.platform === undefined ? {} : { platform: flags.platform }),
        ...(flags.creds === undefined ? {} : { credentials: flags.creds }),
        ...(flags.insecure === undefined ? {} : { insecure: flags.insecure }),
      }),
    );
    if (flags.raw) {
      process.stdout.write(result.manifestBytes);
      return;
    }
    if (flags.config) {
      if (result.configBytes === undefined) {
        throw new EcrxError(
          "USAGE",
          result.kind === "index"
            ? `${result.reference} is a multi-platform index, which has no config`
            : `${result.reference} has no image config (its config is ${result.artifactType ?? "not an image config"})`,
          result.kind === "index" ? { hint: "pick one image with --platform os/arch" } : {},
        );
      }
      process.stdout.write(result.configBytes);
      if (!result.configBytes.toString("utf8").endsWith("\n")) process.stdout.write("\n");
      return;
    }
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(inspectJson(result), null, 2)}\n`);
      return;
    }
    process.stdout.write(`${formatInspect(result)}\n`);
  });
}

/** The result without the raw bytes, which --raw and --config print. */
export function inspectJson(result: InspectResult): Omit<InspectResult, "manifestBytes" | "configBytes"> {
  const { manifestBytes: _manifest, configBytes: _config, ...rest } = result;
  return rest;
}

/** The human view of inspect: fields, then the layers or the platforms as a table. */
export function formatInspect(result: InspectResult): string {
  const fields: [string, string | string[]][] = [
    ["reference", result.reference],
    ...(result.parentIndex
      ? ([["index", `${result.parentIndex.digest} (${result.parentIndex.mediaType})`]] as [string, string][])
      : []),
    ["media type", result.manifest.mediaType],
    ["digest", result.manifest.digest],
    ["manifest", formatBytes(result.manifest.size)],
  ];
  if (result.artifactType) fields.push(["artifact type", result.artifactType]);
  const config = result.config;
  if (config) {
    fields.push(["platform", config.platform ?? "-"]);
    if (config.created) fields.push(["created", config.created]);
    if (config.entrypoint) fields.push(["entrypoint", JSON.stringify(config.entrypoint)]);
    if (config.cmd) fields.push(["cmd", JSON.stringify(config.cmd)]);
    if (config.workingDir) fields.push(["workdir", config.workingDir]);
    if (config.user) fields.push(["user", config.user]);
    if (config.env?.length) fields.push(["env", config.env]);
    if (config.labels) fields.push(["labels", Object.entries(config.labels).map(([k, v]) => `${k}=${v}`)]);
    fields.push(["config", `${config.digest} (${formatBytes(config.size)}, ${config.mediaType})`]);
  }
  if (result.annotations && Object.keys(result.annotations).length > 0) {
    fields.push(["annotations", Object.entries(result.annotations).map(([k, v]) => `${k}=${v}`)]);
  }
  const parts = [formatFields(fields)];
  if (result.layers) {
    parts.push(
      "",
      `layers: ${result.layers.length}, ${formatBytes(result.size ?? 0)} with the config`,
      formatTable(
        ["DIGEST", "SIZE", "MEDIA TYPE"],
        result.layers.map((l) => [l.digest, formatBytes(l.size), l.mediaType]),
      ),
    );
  }
  if (result.manifests) {
    parts.push(
      "",
      `manifests: ${result.manifests.length}`,
      formatTable(
        ["PLATFORM", "DIGEST", "SIZE", "MEDIA TYPE"],
        result.manifests.map((m) => [
          m.runnable ? (m.platform ?? "-") : `${m.platform ?? "-"} (${m.artifactType ?? "attachment"})`,
          m.digest,
          formatBytes(m.size),
          m.mediaType,
        ]),
      ),
    );
  }
  return parts.join("\n");
}
