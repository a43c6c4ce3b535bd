#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { registerBench } from "./commands/bench.js";
import { registerCompletion } from "./commands/completion.js";
import { registerCopy } from "./commands/copy.js";
import { registerDemo } from "./commands/demo.js";
import { registerInspect } from "./commands/inspect.js";
import { registerLogin } from "./commands/login.js";
import { registerLs } from "./commands/ls.js";
import { registerPull } from "./commands/pull.js";
import { registerPush } from "./commands/push.js";
import { registerRm } from "./commands/rm.js";
import { registerServe } from "./commands/serve.js";
import { registerSync } from "./commands/sync.js";
import { registerTag } from "./commands/tag.js";
import { installRedaction, reportFatal } from "./output.js";

// The SDK warns on every run that its 2027 releases will need Node 22; ecrx pins SDK versions that
// support Node 20, so the warning tells our users nothing they can act on.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

export function buildProgram(): Command {
  const program = new Command("ecrx")
    .description("Move container images in and out of Amazon ECR over the ECR API, with no Docker daemon.")
    .option("--debug", "print stack traces and wire details (secrets redacted)")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  registerDemo(program);
  registerPush(program);
  registerPull(program);
  registerCopy(program);
  registerSync(program);
  registerLs(program);
  registerInspect(program);
  registerTag(program);
  registerRm(program);
  registerLogin(program);
  registerServe(program);
  registerBench(program);
  registerCompletion(program);
  return program;
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander has already printed help or the usage error.
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    const debugEnv = process.env.ECRX_DEBUG;
    const debug =
      argv.includes("--debug") || (debugEnv !== undefined && !["", "0", "false"].includes(debugEnv));
    process.exitCode = reportFatal(err, { debug });
  }
}

// `ecrx ... | head` closes our stdout early: that is the reader's choice, not an error of ours.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw err;
});

installRedaction(process.argv);
await main(process.argv);
