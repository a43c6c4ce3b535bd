import { Option, type Command } from "commander";
import { push } from "../../push.js";
import {
  addAwsOptions,
  awsOptionsFrom,
  concurrencyOption,
  outputOptions,
  sizeArgument,
  type AwsFlags,
  type TransferFlags,
} from "../common.js";
import { runTransfer, transferFigures } from "../progress.js";
import { DEFAULT_UPLOAD_CONCURRENCY } from "../../transfer/engine.js";

type PushFlags = AwsFlags & TransferFlags;

export function registerPush(program: Command): void {
  const command = program
    .command("push")
    .summary("push an image file into ECR or ECR Public through the ECR API")
    .description(
      "Push a docker-archive (docker save), an OCI layout or an OCI archive into an ECR repository, through InitiateLayerUpload / UploadLayerPart / CompleteLayerUpload and PutImage. Blobs the repository has are skipped; uncompressed layers are gzip-compressed on the way.",
    )
    .argument("<source>", "docker-archive:PATH | oci:PATH[:tag] | oci-archive:PATH[:tag] | PATH")
    .argument(
      "<destination>",
      "<account>.dkr.ecr.<region>.amazonaws.com/<repo>[:tag[,tag...]] | public.ecr.aws/<alias>/<repo>[:tag]",
    )
    .option("--create-repo", "create the repository when it does not exist")
    .option("--immutable", "with --create-repo: IMMUTABLE tags")
    .option(
      "-t, --tag <tag>",
      "another tag for the image (repeatable)",
      (v: string, all: string[]) => [...all, v],
      [],
    )
    .addOption(concurrencyOption(String(DEFAULT_UPLOAD_CONCURRENCY)))
    .addOption(
      new Option("--part-size <size>", "UploadLayerPart size, 5MiB..20MiB (default 10MiB)")
        .env("ECRX_PART_SIZE")
        .argParser(sizeArgument),
    )
    .addOption(
      new Option(
        "--compression <mode>",
        "gzip|zstd: compress uncompressed layers; none: store layers uncompressed; keep: change no blob",
      )
        .choices(["keep", "gzip", "zstd", "none"])
        .default("gzip")
        .env("ECRX_COMPRESSION"),
    )
    .option("--platform <os/arch[/variant]>", "push only this platform of a multi-platform image");
  addAwsOptions(command);
  outputOptions(command);
  command.addHelpText(
    "after",
    `
Examples:
  $ ecrx push docker-archive:app.tar 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1.4
  $ ecrx push oci:./layout:v2 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:v2,latest --create-repo
  $ ecrx push app.tar public.ecr.aws/my-alias/app:1.4 --json`,
  );
  command.action(async (source: string, destination: string, flags: PushFlags) => {
    await runTransfer(
      flags,
      "push",
      (onEvent, signal) =>
        push(source, destination, {
          aws: awsOptionsFrom(flags),
          createRepository: flags.createRepo ?? false,
          immutable: flags.immutable ?? false,
          compression: flags.compression,
          tags: flags.tag,
          onEvent,
          signal,
          ...(flags.concurrency === undefined ? {} : { concurrency: flags.concurrency }),
          ...(flags.partSize === undefined ? {} : { partSize: flags.partSize }),
          ...(flags.platform === undefined ? {} : { platform: flags.platform }),
        }),
      (result) => ({
        summary: `pushed ${result.repository}@${result.digest}${result.tags.length ? ` (${result.tags.join(", ")})` : ""}: ${transferFigures(result)}`,
        stdout: `${result.repository}@${result.digest}`,
      }),
    );
  });
}
