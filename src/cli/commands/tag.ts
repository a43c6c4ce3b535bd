import type { Command } from "commander";
import { tag } from "../../retag.js";
import { addAwsOptions, awsOptionsFrom, withInterrupt, type AwsFlags } from "../common.js";
import { paint } from "../style.js";

interface TagFlags extends AwsFlags {
  json?: boolean;
}

export function registerTag(program: Command): void {
  const command = program
    .command("tag")
    .summary("add tags to an image in ECR without moving a blob")
    .description(
      "Add tags to an image already in ECR: BatchGetImage of the image and PutImage of the same manifest bytes under each new tag, as the ECR documentation recommends for retagging. No blob moves and the digest stays the image's. A tag that already names the image is fine; moving a tag of an IMMUTABLE repository is a conflict (exit 6).",
    )
    .argument("<image>", "<account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag> or …/<repo>@sha256:…")
    .argument("<tags...>", "new tags (several, or comma-separated)")
    .option("--json", "print the result as one JSON document");
  addAwsOptions(command);
  command.addHelpText(
    "after",
    `
Examples:
  $ ecrx tag 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1.4.2 1.4 stable
  $ ecrx tag 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app@sha256:… release-2025-03`,
  );
  command.action(async (image: string, tags: string[], flags: TagFlags) => {
    const result = await withInterrupt((signal) => tag(image, tags, { aws: awsOptionsFrom(flags), signal }));
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      return;
    }
    for (const t of result.tags) {
      const status =
        t.status === "tagged"
          ? paint("green", "tagged", process.stdout)
          : paint("dim", "unchanged", process.stdout);
      process.stdout.write(`${status} ${result.repository}:${t.tag} -> ${result.digest}\n`);
    }
  });
}
