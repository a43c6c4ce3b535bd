import type { Command } from "commander";
import { EcrxError } from "../../errors.js";
import { remove, removeErrorCode, type RemoveOutcome } from "../../remove.js";
import { addAwsOptions, awsOptionsFrom, withInterrupt, type AwsFlags } from "../common.js";
import { paint, type Style } from "../style.js";

interface RmFlags extends AwsFlags {
  json?: boolean;
}

const STATUS_STYLE: Record<RemoveOutcome["status"], Style> = {
  deleted: "green",
  "not-found": "yellow",
  refused: "red",
  failed: "red",
};

export function registerRm(program: Command): void {
  const command = program
    .command("rm")
    .alias("delete")
    .summary("delete tags or images from ECR")
    .description(
      "Delete tags or images (BatchDeleteImage). A tag removes only that tag while the image has others; a digest removes the image and all its tags. ECR refuses to delete an image that an index still references. Each tag or digest is reported; the exit code is non-zero if any was not deleted (5 not found, 6 still referenced).",
    )
    .argument("<images...>", "…/<repo>:<tag>[,tag…] or …/<repo>@sha256:… (the tag or digest is required)")
    .option("--json", "print the outcome of each tag or digest as one JSON document");
  addAwsOptions(command);
  command.addHelpText(
    "after",
    `
Examples:
  $ ecrx rm 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1.3
  $ ecrx rm 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:rc1,rc2 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app@sha256:…`,
  );
  command.action(async (images: string[], flags: RmFlags) => {
    const result = await withInterrupt((signal) => remove(images, { aws: awsOptionsFrom(flags), signal }));
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    } else {
      for (const o of result.outcomes) {
        const word = paint(STATUS_STYLE[o.status], o.status, process.stdout);
        const detail =
          o.status === "deleted"
            ? o.removed.map((r) => (r.tag ? `${r.tag} (${r.digest})` : r.digest)).join(", ")
            : `${o.failureCode ?? ""}: ${o.reason ?? ""}`;
        process.stdout.write(`${word} ${o.reference}${detail ? `: ${detail}` : ""}\n`);
      }
    }
    const code = removeErrorCode(result);
    if (code !== undefined) {
      const failed = result.outcomes.filter((o) => o.status !== "deleted").length;
      throw new EcrxError(code, `${failed} of ${result.outcomes.length} not deleted`, {
        ...(code === "CONFLICT" ? { hint: "delete the index that references the image first" } : {}),
      });
    }
  });
}
