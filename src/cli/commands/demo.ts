import type { Command } from "commander";
import { demo } from "../../demo/demo.js";
import { EcrxError } from "../../errors.js";
import { outputOptions, withInterrupt } from "../common.js";
import { formatBytes, formatRate } from "../format.js";
import { createRenderer, outputMode } from "../progress.js";
import { formatInspect, inspectJson } from "./inspect.js";
import { formatImageList } from "./ls.js";

export function registerDemo(program: Command): void {
  const command = program
    .command("demo")
    .summary("try ecrx without an AWS account: push and pull an image through a local ECR")
    .description(
      "Starts a local ECR in-process, generates a small docker-archive (three uncompressed layers, about 36 MB), pushes it through the ECR API with live progress, lists the repository and inspects the image (as `ecrx ls` and `ecrx inspect` do), pulls it back into an OCI layout verifying every digest, prints the throughput and cleans up.",
    );
  outputOptions(command);
  command.addHelpText(
    "after",
    `
Examples:
  $ ecrx demo               # bars on a terminal, then the summary
  $ ecrx demo --json        # NDJSON steps and transfer events, then a summary`,
  );
  command.action(async (flags: { json?: boolean; quiet?: boolean }) => {
    const mode = outputMode(flags);
    const say = (line: string) => {
      if (mode === "json") process.stdout.write(`${JSON.stringify({ type: "step", message: line })}\n`);
      else if (mode !== "quiet") process.stderr.write(`==> ${line}\n`);
    };
    // The listing and the inspection, as `ecrx ls` and `ecrx inspect` print them, indented.
    const show = (text: string) => {
      if (mode === "tty" || mode === "plain") process.stderr.write(`${text.replace(/^(?=.)/gm, "    ")}\n`);
    };
    let renderer = createRenderer(mode, "push");
    const result = await withInterrupt((signal) =>
      demo({
        signal,
        onStep: (message) => {
          // A fresh set of bars for each transfer.
          renderer.finish();
          say(message);
          renderer = createRenderer(mode, message.startsWith("pulling") ? "pull" : "push");
        },
        onEvent: (event) => renderer.onEvent(event),
        onListed: (list) => show(formatImageList(list, { digests: false })),
        onInspected: (inspected) => show(formatInspect(inspected)),
      }),
    ).finally(() => renderer.finish());
    if (!result.verified) {
      throw new EcrxError("INTEGRITY", `pulled ${result.pull.digest}, pushed ${result.digest}`);
    }
    if (mode === "json") {
      process.stdout.write(
        `${JSON.stringify({ type: "summary", ...result, inspect: inspectJson(result.inspect) })}\n`,
      );
      return;
    }
    const { push, pull } = result;
    process.stdout.write(
      [
        "",
        `pushed ${result.reference}@${result.digest}`,
        `  push: ${push.blobsSent} blobs, ${formatBytes(push.bytesSent)} sent (gzip on the way) in ${push.seconds.toFixed(2)} s, ${formatRate(push.bytesSent, push.seconds)}`,
        `  pull: ${pull.blobsSent} blobs, ${formatBytes(pull.bytesSent)} in ${pull.seconds.toFixed(2)} s, ${formatRate(pull.bytesSent, pull.seconds)}`,
        "  every digest verified: the image pulled back is the image pushed",
        "",
        "Next: `ecrx serve` runs the local ECR on its own; `ecrx push --help` shows how to push your images.",
        "",
      ].join("\n"),
    );
  });
}
