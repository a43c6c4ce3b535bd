import type { Command } from "commander";
import { pull } from "../../pull.js";
import { addAwsOptions, awsOptionsFrom, concurrencyOption, outputOptions, type AwsFlags } from "../common.js";
import { runTransfer, transferFigures } from "../progress.js";
import { DEFAULT_CONCURRENCY } from "../../transfer/engine.js";

interface PullFlags extends AwsFlags {
  platform?: string;
  allPlatforms?: boolean;
  concurrency?: number;
  json?: boolean;
  quiet?: boolean;
}

export function registerPull(program: Command): void {
  const command = program
    .command("pull")
    .summary("pull an image from ECR into a docker-archive, an OCI layout or an OCI archive")
    .description(
      "Pull an image from ECR through BatchGetImage and GetDownloadUrlForLayer: large blobs come as several Range requests at once, every digest is verified, and the output appears only when it is complete.",
    )
    .argument("<source>", "<account>.dkr.ecr.<region>.amazonaws.com/<repo>[:tag|@digest]")
    .argument("<destination>", "docker-archive:PATH[:name:tag] | oci:PATH[:tag] | oci-archive:PATH[:tag]")
    .option(
      "--platform <os/arch[/variant]>",
      "the platform to take from a multi-platform image (default: this machine's)",
    )
    .option("--all-platforms", "keep the whole multi-platform index (oci: and oci-archive: only)")
    .addOption(concurrencyOption(String(DEFAULT_CONCURRENCY)));
  addAwsOptions(command);
  outputOptions(command);
  command.addHelpText(
    "after",
    `
Examples:
  $ ecrx pull 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1.4 docker-archive:app.tar
  $ ecrx pull 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1.4 oci:./layout:1.4 --all-platforms
  $ docker load -i app.tar`,
  );
  command.action(async (source: string, destination: string, flags: PullFlags) => {
    await runTransfer(
      flags,
      "pull",
      (onEvent, signal) =>
        pull(source, destination, {
          aws: awsOptionsFrom(flags),
          allPlatforms: flags.allPlatforms ?? false,
          onEvent,
          signal,
          ...(flags.platform === undefined ? {} : { platform: flags.platform }),
          ...(flags.concurrency === undefined ? {} : { concurrency: flags.concurrency }),
        }),
      (result) => ({
        summary: `pulled ${result.digest} into ${result.destination}: ${transferFigures(result)}`,
        stdout: result.destination,
      }),
    );
  });
}
