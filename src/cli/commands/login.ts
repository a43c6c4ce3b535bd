import type { Command } from "commander";
import { loginPassword, writeDockerLogin } from "../../login.js";
import { addAwsOptions, awsOptionsFrom, withInterrupt, type AwsFlags } from "../common.js";

interface LoginFlags extends AwsFlags {
  writeDockerConfig?: boolean;
  json?: boolean;
}

export function registerLogin(program: Command): void {
  const command = program
    .command("login")
    .summary("print the registry password of an ECR registry, or write it into docker's config")
    .description(
      "Print the password of GetAuthorizationToken (valid 12 hours), as `aws ecr get-login-password` does, for `docker login --username AWS --password-stdin`. With --write-docker-config, write it into the `auths` of docker's config.json instead ($DOCKER_CONFIG/config.json, else ~/.docker/config.json), keeping everything else in the file; the file is replaced atomically, mode 0600, and nothing is printed but the hosts written. For a local server (`ecrx serve`) the entry is also written for 127.0.0.1:<port>, where docker and skopeo reach it.",
    )
    .argument("[registry]", "an ECR registry host, or public.ecr.aws (default: your account's registry)")
    .option("--write-docker-config", "write the password into docker's config.json instead of printing it")
    .option("--json", "print registry, username, password (unless --write-docker-config) and expiry as JSON");
  addAwsOptions(command);
  command.addHelpText(
    "after",
    `
Examples:
  $ ecrx login 123456789012.dkr.ecr.eu-west-1.amazonaws.com | docker login --username AWS --password-stdin 123456789012.dkr.ecr.eu-west-1.amazonaws.com
  $ ecrx login 123456789012.dkr.ecr.eu-west-1.amazonaws.com --write-docker-config
  $ ecrx login public.ecr.aws --write-docker-config`,
  );
  command.action(async (registry: string | undefined, flags: LoginFlags) => {
    const login = await withInterrupt((signal) =>
      loginPassword(registry, { aws: awsOptionsFrom(flags), signal }),
    );
    const expiresAt = login.expiresAt?.toISOString();
    if (!flags.writeDockerConfig) {
      if (flags.json) {
        const { hosts: _hosts, ...shown } = login;
        process.stdout.write(`${JSON.stringify({ ...shown, expiresAt })}\n`);
      } else {
        // Exactly the password and a newline, as `aws ecr get-login-password` prints it.
        process.stdout.write(`${login.password}\n`);
      }
      return;
    }
    const path = await writeDockerLogin(login);
    if (flags.json) {
      process.stdout.write(
        `${JSON.stringify({ registry: login.registry, hosts: login.hosts, path, expiresAt })}\n`,
      );
      return;
    }
    process.stderr.write(
      `wrote credentials for ${login.hosts.join(" and ")} to ${path}${expiresAt ? ` (valid until ${expiresAt})` : ""}\n`,
    );
  });
}
