import { Argument, type Command } from "commander";
import { completionScript, SHELLS, type Shell } from "../completion.js";

export function registerCompletion(program: Command): void {
  program
    .command("completion")
    .summary("print a shell completion script (bash, zsh or fish)")
    .description(
      "Print a completion script for bash, zsh or fish: commands, the options of each command, their values, and the transport prefixes of image references.",
    )
    .addArgument(new Argument("<shell>", "bash, zsh or fish").choices(SHELLS))
    .addHelpText(
      "after",
      `
Examples:
  $ ecrx completion bash > ~/.local/share/bash-completion/completions/ecrx
  $ source <(ecrx completion bash)                                   # this shell only
  $ ecrx completion zsh > "\${fpath[1]}/_ecrx"
  $ ecrx completion fish > ~/.config/fish/completions/ecrx.fish`,
    )
    .action((shell: Shell) => {
      process.stdout.write(completionScript(program, shell));
    });
}
