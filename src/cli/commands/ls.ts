import type { Command } from "commander";
import { isRegistryArgument, listImages, listRepositories, type ImageList } from "../../list.js";
import { addAwsOptions, awsOptionsFrom, withInterrupt, type AwsFlags } from "../common.js";
import { formatBytes } from "../format.js";
import { abbreviateDigest, formatTable, formatTime, shortMediaType } from "../tables.js";
import { credentialsArgument } from "./copy.js";
import type { RegistryCredentials } from "../../transports/registry/credentials.js";

interface LsFlags extends AwsFlags {
  json?: boolean;
  digests?: boolean;
  creds?: RegistryCredentials;
  insecure?: boolean;
}

export function registerLs(program: Command): void {
  const command = program
    .command("ls")
    .alias("list")
    .summary("list the repositories of a registry, or the images of a repository")
    .description(
      "Without an argument or with a registry host: the repositories of that ECR registry (DescribeRepositories). With a repository: its images, newest first, with tags, digest, size, push time, media type and the platforms of each index (DescribeImages, BatchGetImage). For a registry that is not ECR, the tags of the repository (the v2 tags list).",
    )
    .argument("[target]", "an ECR registry host, or a repository: <registry>/<repo>")
    .option("--json", "print the listing as one JSON document")
    .option("--digests", "show whole digests")
    .option("--creds <user:password>", "credentials of a registry that is not ECR", credentialsArgument)
    .option("--insecure", "allow plain http or unverified TLS to a registry that is not ECR");
  addAwsOptions(command);
  command.addHelpText(
    "after",
    `
Examples:
  $ ecrx ls                                                     # repositories of your default registry
  $ ecrx ls 123456789012.dkr.ecr.eu-west-1.amazonaws.com        # repositories of that registry
  $ ecrx ls 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app    # images of app, newest first
  $ ecrx ls 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app --json | jq -r '.images[0].digest'
  $ ecrx ls registry.example.com/team/app                       # tags of any registry`,
  );
  command.action(async (target: string | undefined, flags: LsFlags) => {
    const aws = awsOptionsFrom(flags);
    if (target === undefined || isRegistryArgument(target)) {
      const list = await withInterrupt((signal) => listRepositories(target, { aws, signal }));
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
        return;
      }
      if (list.repositories.length === 0) {
        process.stderr.write(`no repositories in ${list.registry ?? "the default registry"}\n`);
        return;
      }
      // The registry as the user wrote it (a local server's port included), else ECR's URI.
      const rows = list.repositories.map((r) => [
        list.registry ? `${list.registry}/${r.name}` : (r.uri ?? r.name),
        r.imageTagMutability ?? "-",
        formatTime(r.createdAt),
      ]);
      process.stdout.write(`${formatTable(["REPOSITORY", "TAGS", "CREATED"], rows)}\n`);
      return;
    }
    const list = await withInterrupt((signal) =>
      listImages(target, {
        aws,
        signal,
        ...(flags.creds === undefined ? {} : { credentials: flags.creds }),
        ...(flags.insecure === undefined ? {} : { insecure: flags.insecure }),
      }),
    );
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
      return;
    }
    if (list.images.length === 0) {
      process.stderr.write(`no images in ${list.repository}\n`);
      return;
    }
    process.stdout.write(`${formatImageList(list, { digests: flags.digests ?? false })}\n`);
  });
}

/** The images of a repository as a table: tags, digest, size, push time, type, platforms. */
export function formatImageList(list: ImageList, options: { digests: boolean }): string {
  if (list.source === "registry")
    return formatTable(
      ["TAG"],
      list.images.map((i) => [i.tags.join(",")]),
    );
  const digest = (d: string | undefined) => (options.digests ? (d ?? "-") : abbreviateDigest(d));
  const rows = list.images.map((i) => [
    i.tags.length > 0 ? i.tags.join(",") : "<untagged>",
    digest(i.digest),
    i.size === undefined ? "-" : formatBytes(i.size),
    formatTime(i.pushedAt),
    shortMediaType(i.mediaType) + (isArtifact(i.artifactMediaType) ? ` (${i.artifactMediaType})` : ""),
    i.platforms?.join(",") ?? "",
  ]);
  return formatTable(["TAGS", "DIGEST", "SIZE", "PUSHED", "TYPE", "PLATFORMS"], rows);
}

/** ECR reports the config media type of every image; only that of an artifact says something. */
function isArtifact(configMediaType: string | undefined): configMediaType is string {
  return (
    configMediaType !== undefined &&
    configMediaType !== "application/vnd.oci.image.config.v1+json" &&
    configMediaType !== "application/vnd.docker.container.image.v1+json"
  );
}
