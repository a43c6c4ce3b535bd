import { Option, type Command } from "commander";
import { EcrxError } from "../../errors.js";
import { parseShard, sync, type SyncedImage } from "../../sync.js";
import { outputOptions, positiveInt, withInterrupt } from "../common.js";
import { formatBytes } from "../format.js";
import { outputMode } from "../progress.js";
import { addSideOptions, sideFlags, sideOptions } from "./copy.js";

interface SyncFlags {
  tags?: string;
  allTags?: boolean;
  shard?: { index: number; count: number };
  via: "api" | "registry";
  createRepo?: boolean;
  images?: number;
  concurrency?: number;
  json?: boolean;
  quiet?: boolean;
}

export function registerSync(program: Command): void {
  const command = program
    .command("sync")
    .summary("copy many tags of a repository to another, skipping images already there")
    .description(
      "Copy the tags of SOURCE_REPO that --tags matches (or --all-tags) to DEST_REPO, several images at once under one blob budget, skipping images whose digest the destination tag already has. Prints copied / skipped / failed and exits non-zero if any failed. --shard I/N takes a deterministic share of the tags, so an array job can spread a migration over many machines.",
    )
    .argument("<source-repo>", "a repository: ECR, ECR Public or any registry (no tag)")
    .argument("<dest-repo>", "a repository (no tag)")
    .option("--tags <regex>", "copy the tags this pattern matches whole, e.g. 'v1\\..*'")
    .option("--all-tags", "copy every tag")
    .option(
      "--shard <I/N>",
      "only shard I (0-based) of N: tags are assigned by a hash of their name",
      (v: string) => parseShard(v),
    )
    .addOption(
      new Option("--via <api>", "for ECR hosts: the ECR API or the registry (v2) endpoint")
        .choices(["api", "registry"])
        .default("api"),
    )
    .option("--create-repo", "create the ECR destination repository when it does not exist")
    .addOption(
      new Option("--images <n>", "images copied at once (default 4)").argParser(positiveInt("--images", 64)),
    )
    .addOption(
      new Option("--concurrency <n>", "blobs in flight at once, all images together (default 8)")
        .env("ECRX_CONCURRENCY")
        .argParser(positiveInt("--concurrency", 256)),
    );
  addSideOptions(command, "src");
  addSideOptions(command, "dest");
  outputOptions(command);
  command.addHelpText(
    "after",
    `
Examples:
  $ ecrx sync 111111111111.dkr.ecr.us-east-1.amazonaws.com/app 222222222222.dkr.ecr.eu-west-1.amazonaws.com/app --all-tags --dest-profile dr
  $ ecrx sync docker.io/library/alpine 123456789012.dkr.ecr.eu-west-1.amazonaws.com/alpine --tags '3\\.2[0-9].*' --create-repo
  $ ecrx sync registry.example.com/team/api 123456789012.dkr.ecr.eu-west-1.amazonaws.com/api --all-tags --shard "$JOB_COMPLETION_INDEX/8"`,
  );
  command.action(async (sourceRepo: string, destRepo: string, raw: Record<string, unknown>) => {
    const flags = raw as unknown as SyncFlags;
    const mode = outputMode(flags);
    const line = (image: SyncedImage) => {
      if (mode === "json") process.stdout.write(`${JSON.stringify({ type: "image", ...image })}\n`);
      else if (mode !== "quiet" || image.status === "failed") {
        const detail =
          image.status === "failed"
            ? `: ${image.error}`
            : image.status === "copied"
              ? ` (${formatBytes(image.bytesSent)} sent)`
              : "";
        process.stderr.write(
          `${image.status.padEnd(7)} ${image.tag}${image.digest ? ` ${image.digest}` : ""}${detail}\n`,
        );
      }
    };
    const result = await withInterrupt((signal) =>
      sync(sourceRepo, destRepo, {
        source: sideOptions(sideFlags(raw, "src"), flags.via),
        destination: {
          ...sideOptions(sideFlags(raw, "dest"), flags.via),
          createRepository: flags.createRepo ?? false,
        },
        ...(flags.tags === undefined ? {} : { tags: flags.tags }),
        allTags: flags.allTags ?? false,
        ...(flags.shard === undefined ? {} : { shard: flags.shard }),
        ...(flags.images === undefined ? {} : { images: flags.images }),
        ...(flags.concurrency === undefined ? {} : { concurrency: flags.concurrency }),
        onImage: line,
        signal,
      }),
    );
    if (mode === "json") {
      const { images: _images, ...summary } = result;
      process.stdout.write(`${JSON.stringify({ type: "summary", ...summary })}\n`);
    } else if (mode !== "quiet") {
      process.stderr.write(
        `${result.tags} tag(s): ${result.copied} copied, ${result.skipped} skipped, ${result.failed} failed; ` +
          `${formatBytes(result.bytesSent)} sent in ${result.seconds.toFixed(1)} s\n`,
      );
    }
    if (result.failed > 0) {
      const first = result.images.find((i) => i.status === "failed")!;
      throw new EcrxError(
        (first.code as EcrxError["code"] | undefined) ?? "NETWORK",
        `${result.failed} of ${result.tags} image(s) failed to sync; the first: ${first.tag}: ${first.error}`,
        { hint: "run the same sync again: images already copied are skipped" },
      );
    }
  });
}
