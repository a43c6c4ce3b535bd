/**
 * The built binary's everyday commands as a user runs them: ls, inspect, tag, rm, login and
 * completion; their --json shapes, exit codes (commander's usage errors included), one-line errors,
 * --help with examples on every command, color only when asked for.
 */
import { execFile } from "node:child_process";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import { EXIT_CODES } from "../../src/errors.js";
import { cliEnv, ensureBuilt, expectShortError, runCli } from "../helpers/cli.js";
import { buildImage, KiB, type BuiltImage } from "../helpers/images.js";
import { useScratch } from "../helpers/scratch.js";

const run = promisify(execFile);
const scratch = useScratch("cli-everyday");
let server: RunningServer;
let home: string;
let single: BuiltImage;
let multi: BuiltImage;
let repo: string;

function env(extra: Record<string, string> = {}): Record<string, string> {
  return cliEnv(home, { ...server.env, ...extra });
}

beforeAll(async () => {
  ensureBuilt();
  home = scratch.fresh("home");
  await mkdir(home);
  server = await serve({ port: 0 });
  repo = `${server.registryHost}/cli/every`;
  const dir = scratch.fresh("images");
  single = await buildImage({
    format: "docker-archive-classic",
    dir,
    seed: "cli-every",
    layers: [{ size: 32 * KiB }],
  });
  multi = await buildImage({
    format: "oci-layout",
    dir,
    name: "multi",
    seed: "cli-multi",
    platforms: ["linux/amd64", "linux/arm64"],
  });
  for (const [image, tags] of [
    [single, "1.0"],
    [multi, "multi"],
  ] as const) {
    const pushed = await runCli(
      ["push", image.reference, `${repo}:${tags}`, "--create-repo", "--compression", "keep", "-q"],
      env(),
    );
    expect(pushed.code, pushed.stderr).toBe(0);
  }
}, 180_000);

afterAll(async () => {
  await server?.close();
});

describe("ecrx ls", () => {
  it("lists repositories and images as tables and as JSON", async () => {
    const repos = await runCli(["ls", server.registryHost], env());
    expect(repos.code, repos.stderr).toBe(0);
    expect(repos.stdout.split("\n")[0]).toMatch(/^REPOSITORY\s+TAGS\s+CREATED$/);
    expect(repos.stdout).toContain(`${repo}  MUTABLE`);

    const images = await runCli(["ls", repo], env());
    expect(images.code, images.stderr).toBe(0);
    const lines = images.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^TAGS\s+DIGEST\s+SIZE\s+PUSHED\s+TYPE\s+PLATFORMS$/);
    // Newest first: the index pushed last, with its platforms.
    expect(lines[1]).toMatch(/^multi\s+sha256:[0-9a-f]{12}\s.*oci index\s+linux\/amd64,linux\/arm64$/);
    expect(images.stdout).toMatch(/^1\.0\s+sha256:[0-9a-f]{12}\s.*docker image$/m);

    const json = await runCli(["ls", repo, "--json"], env());
    const list = JSON.parse(json.stdout) as {
      repository: string;
      source: string;
      images: { digest: string; tags: string[]; platforms?: string[] }[];
    };
    expect(list.repository).toBe(repo);
    expect(list.source).toBe("ecr");
    expect(list.images[0]).toMatchObject({
      digest: multi.root.digest,
      tags: ["multi"],
      platforms: ["linux/amd64", "linux/arm64"],
    });
    expect(list.images).toHaveLength(4);
  });

  it("exits 5 for a missing repository and 4 for refused credentials", async () => {
    const missing = await runCli(["ls", `${server.registryHost}/cli/none`], env());
    expect(missing.code).toBe(EXIT_CODES.NOT_FOUND);
    expectShortError(missing.stderr, /RepositoryNotFoundException/);
    const refused = await runCli(["ls", server.registryHost], env({ AWS_ACCESS_KEY_ID: "AKIAWRONG" }));
    expect(refused.code).toBe(EXIT_CODES.AUTH);
    expectShortError(refused.stderr, /UnrecognizedClientException/);
  });
});

describe("ecrx inspect", () => {
  it("--raw prints the manifest bytes exactly as pushed, no newline added", async () => {
    const raw = await runCli(["inspect", `${repo}:multi`, "--raw"], env());
    expect(raw.code, raw.stderr).toBe(0);
    expect(raw.stdout).toBe(multi.root.bytes.toString("utf8"));
    const child = await runCli(["inspect", `${repo}:multi`, "--raw", "--platform", "linux/arm64"], env());
    expect(child.stdout).toBe(multi.manifests[1]!.bytes.toString("utf8"));
  });

  it("shows manifest, config and layers; --config prints the config; --json has no raw bytes", async () => {
    const human = await runCli(["inspect", `${repo}:1.0`], env());
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(
      /^media type\s+application\/vnd\.docker\.distribution\.manifest\.v2\+json$/m,
    );
    expect(human.stdout).toMatch(/^platform\s+linux\/amd64$/m);
    expect(human.stdout).toContain(single.manifests[0]!.layers[0]!.digest);

    const config = await runCli(["inspect", single.reference, "--config"], env());
    expect(JSON.parse(config.stdout)).toEqual(JSON.parse(single.manifests[0]!.config.bytes.toString("utf8")));

    const json = await runCli(["inspect", `${repo}:multi`, "--json"], env());
    const parsed = JSON.parse(json.stdout) as Record<string, unknown>;
    expect(parsed).toMatchObject({ kind: "index", manifest: { digest: multi.root.digest } });
    expect(parsed).not.toHaveProperty("manifestBytes");
    expect((parsed.manifests as unknown[]).length).toBe(2);
  });

  it("exits 2 for --config of an index, 5 for a missing tag, 7 for a platform it lacks", async () => {
    const index = await runCli(["inspect", `${repo}:multi`, "--config"], env());
    expect(index.code).toBe(EXIT_CODES.USAGE);
    expectShortError(index.stderr, /multi-platform index, which has no config/);
    const missing = await runCli(["inspect", `${repo}:nope`], env());
    expect(missing.code).toBe(EXIT_CODES.NOT_FOUND);
    const platform = await runCli(["inspect", `${repo}:multi`, "--platform", "linux/s390x"], env());
    expect(platform.code).toBe(EXIT_CODES.UNSUPPORTED);
  });
});

describe("ecrx tag and rm", () => {
  it("tags, refuses to move an immutable tag (exit 6), deletes and reports each id", async () => {
    const frozen = `${server.registryHost}/cli/frozen`;
    for (const [image, t, extra] of [
      [single, "1.0", ["--immutable"]],
      [multi, "2.0", []],
    ] as const) {
      const pushed = await runCli(
        ["push", image.reference, `${frozen}:${t}`, "--create-repo", ...extra, "-q"],
        env(),
      );
      expect(pushed.code, pushed.stderr).toBe(0);
    }
    const tagged = await runCli(["tag", `${frozen}:1.0`, "stable", "--json"], env());
    expect(tagged.code, tagged.stderr).toBe(0);
    expect(JSON.parse(tagged.stdout)).toMatchObject({ tags: [{ tag: "stable", status: "tagged" }] });
    const conflict = await runCli(["tag", `${frozen}:2.0`, "stable"], env());
    expect(conflict.code).toBe(EXIT_CODES.CONFLICT);
    expectShortError(conflict.stderr, /tag stable already names another image in cli\/frozen/);

    const child = multi.manifests[0]!.digest;
    const refused = await runCli(["rm", `${frozen}@${child}`], env());
    expect(refused.code).toBe(EXIT_CODES.CONFLICT);
    expect(refused.stdout.trimEnd().split("\n")).toEqual([
      `refused ${frozen}@${child}: ImageReferencedByManifestList: Requested image referenced by manifest list: [${multi.root.digest}]`,
    ]);
    expectShortError(refused.stderr, /1 of 1 not deleted/);

    const mixed = await runCli(["rm", `${frozen}:stable,nope`, "--json"], env());
    expect(mixed.code).toBe(EXIT_CODES.NOT_FOUND);
    expect(JSON.parse(mixed.stdout)).toMatchObject({
      ok: false,
      outcomes: [
        { reference: `${frozen}:stable`, status: "deleted", removed: [{ tag: "stable" }] },
        { reference: `${frozen}:nope`, status: "not-found", failureCode: "ImageNotFound" },
      ],
    });
    const ok = await runCli(["rm", `${frozen}:2.0`], env());
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toBe(`deleted ${frozen}:2.0: 2.0 (${multi.root.digest})\n`);

    const bare = await runCli(["rm", frozen], env());
    expect(bare.code).toBe(EXIT_CODES.USAGE);
    expectShortError(bare.stderr, /say which image/);
  });

  it("colors status words only with FORCE_COLOR, never with NO_COLOR or into a pipe", async () => {
    await runCli(["tag", `${repo}:1.0`, "c1", "c2", "c3"], env());
    const forced = await runCli(["rm", `${repo}:c1`], env({ FORCE_COLOR: "1" }));
    expect(forced.stdout).toContain("\u001b[32mdeleted\u001b[39m");
    const piped = await runCli(["rm", `${repo}:c2`], env());
    expect(piped.stdout).not.toContain("\u001b[");
    const noColor = await runCli(["rm", `${repo}:c3`], env({ FORCE_COLOR: "1", NO_COLOR: "1" }));
    expect(noColor.stdout).toMatch(/^deleted /);
    expect(noColor.stdout).not.toContain("\u001b[");
  });
});

describe("ecrx login", () => {
  it("prints only the password, which the registry API accepts", async () => {
    const login = await runCli(["login", server.registryHost], env());
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toMatch(/^[^\s]+\n$/);
    expect(login.stderr).toBe("");
    const res = await fetch(`${server.url}/v2/cli/every/tags/list`, {
      headers: { authorization: `Basic ${Buffer.from(`AWS:${login.stdout.trim()}`).toString("base64")}` },
    });
    expect(res.status).toBe(200);
  });

  it("--write-docker-config merges into $DOCKER_CONFIG/config.json with mode 0600 and prints no secret", async () => {
    const dockerDir = scratch.fresh("docker");
    await mkdir(dockerDir);
    await writeFile(
      join(dockerDir, "config.json"),
      JSON.stringify({ auths: { "quay.io": { auth: "eDp5" } }, detachKeys: "ctrl-e" }),
    );
    const login = await runCli(["login", "--write-docker-config"], env({ DOCKER_CONFIG: dockerDir }));
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toBe("");
    expect(login.stderr).toContain(
      `wrote credentials for ${server.registryHost} and 127.0.0.1:${server.port}`,
    );
    const path = join(dockerDir, "config.json");
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const config = JSON.parse(await readFile(path, "utf8")) as {
      auths: Record<string, { auth: string }>;
      detachKeys: string;
    };
    expect(config.detachKeys).toBe("ctrl-e");
    expect(Object.keys(config.auths).sort()).toEqual(
      [`127.0.0.1:${server.port}`, server.registryHost, "quay.io"].sort(),
    );
    const password = Buffer.from(config.auths[server.registryHost]!.auth, "base64").toString("utf8").slice(4);
    expect(login.stderr).not.toContain(password);

    const json = await runCli(
      ["login", server.registryHost, "--write-docker-config", "--json"],
      env({ DOCKER_CONFIG: dockerDir }),
    );
    const shown = JSON.parse(json.stdout) as Record<string, unknown>;
    expect(shown).toMatchObject({ registry: server.registryHost, path });
    expect(shown).not.toHaveProperty("password");
  });
});

const commands = [
  "push",
  "pull",
  "copy",
  "sync",
  "ls",
  "inspect",
  "tag",
  "rm",
  "login",
  "serve",
  "bench",
  "demo",
  "completion",
];

describe("every command", () => {
  it("has --help with examples, and exits 2 on commander's usage errors", async () => {
    for (const command of commands) {
      const help = await runCli([command, "--help"], env());
      expect(help.code, command).toBe(0);
      expect(help.stdout, command).toMatch(/^Usage: ecrx /);
      expect(help.stdout, command).toMatch(/Examples?:\n\s+\$ ecrx /);
      const bad = await runCli([command, "--no-such-option"], env());
      expect(bad.code, command).toBe(EXIT_CODES.USAGE);
      expect(bad.stderr, command).toContain("unknown option '--no-such-option'");
    }
    // A stack trace only when asked for, with --debug or ECRX_DEBUG.
    const quiet = await runCli(["inspect", `${repo}:nope`], env());
    expect(quiet.stderr).not.toMatch(/^\s+at /m);
    const debug = await runCli(["inspect", `${repo}:nope`], env({ ECRX_DEBUG: "1" }));
    expect(debug.code).toBe(EXIT_CODES.NOT_FOUND);
    expect(debug.stderr).toMatch(/^\s+at /m);
    const unknown = await runCli(["frobnicate"], env());
    expect(unknown.code).toBe(EXIT_CODES.USAGE);
    const missing = await runCli(["tag", `${repo}:1.0`], env());
    expect(missing.code).toBe(EXIT_CODES.USAGE);
    const choice = await runCli(["completion", "tcsh"], env());
    expect(choice.code).toBe(EXIT_CODES.USAGE);
  }, 120_000);
});

describe("ecrx completion", () => {
  it("bash: valid syntax, and `ecrx pu<TAB>` offers push and pull", async () => {
    const script = await runCli(["completion", "bash"], env());
    expect(script.code, script.stderr).toBe(0);
    const file = join(scratch.fresh("completion"), "ecrx.bash");
    await mkdir(join(file, ".."), { recursive: true });
    await writeFile(file, script.stdout);
    await run("bash", ["-n", file]);
    const complete = async (line: string, words: string[]) => {
      const { stdout } = await run("bash", [
        "-c",
        `source "$1"; COMP_LINE="$2"; COMP_POINT=\${#COMP_LINE}; shift 2; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _ecrx; printf '%s\\n' "\${COMPREPLY[@]}"`,
        "complete",
        file,
        line,
        ...words,
      ]);
      return stdout.trim().split("\n").filter(Boolean).sort();
    };
    expect(await complete("ecrx pu", ["ecrx", "pu"])).toEqual(["pull", "push"]);
    expect(await complete("ecrx push --compr", ["ecrx", "push", "--compr"])).toEqual(["--compression"]);
    expect(await complete("ecrx push --compression z", ["ecrx", "push", "--compression", "z"])).toEqual([
      "zstd",
    ]);
    expect(await complete("ecrx inspect oci-", ["ecrx", "inspect", "oci-"])).toEqual(["oci-archive:"]);
    expect(await complete("ecrx completion f", ["ecrx", "completion", "f"])).toEqual(["fish"]);
  });

  it("zsh and fish scripts name every command and the options of each", async () => {
    for (const shell of ["zsh", "fish"]) {
      const script = await runCli(["completion", shell], env());
      expect(script.code, script.stderr).toBe(0);
      for (const command of commands) expect(script.stdout, `${shell} ${command}`).toContain(command);
      expect(script.stdout).toContain(shell === "zsh" ? "--create-repo[" : "-l create-repo");
      expect(script.stdout).toContain("oci-archive:");
    }
  });
});

describe("ecrx demo", () => {
  it("tours push, ls, inspect and pull, and its summary agrees on one digest", async () => {
    const demo = await runCli(["demo", "--json"], { HOME: home, ECRX_CACHE_DIR: join(home, "demo-cache") });
    expect(demo.code, demo.stderr).toBe(0);
    const events = demo.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const steps = events.filter((e) => e.type === "step").map((e) => String(e.message));
    expect(steps.map((s) => s.split(" ")[0])).toEqual([
      "local",
      "built",
      "pushing",
      "listing",
      "inspecting",
      "pulling",
    ]);
    const summary = events.at(-1) as {
      type: string;
      digest: string;
      verified: boolean;
      list: { images: { digest: string; tags: string[] }[] };
      inspect: { manifest: { digest: string }; layers: unknown[]; manifestBytes?: unknown };
    };
    expect(summary.type).toBe("summary");
    expect(summary.verified).toBe(true);
    expect(summary.list.images).toEqual([
      expect.objectContaining({ digest: summary.digest, tags: ["latest"] }),
    ]);
    expect(summary.inspect.manifest.digest).toBe(summary.digest);
    expect(summary.inspect.layers).toHaveLength(3);
    expect(summary.inspect).not.toHaveProperty("manifestBytes");
  });
});
