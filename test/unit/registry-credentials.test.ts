import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import {
  dockerConfigPath,
  dockerCredentials,
  runCredentialHelper,
} from "../../src/transports/registry/credentials.js";
import { expectEcrxError } from "../helpers/expect-error.js";
import { useScratch } from "../helpers/scratch.js";

const scratch = useScratch("registry-credentials");
let bin = "";
/** PATH with only the fake helpers and the shell's own tools. */
let env: NodeJS.ProcessEnv = {};

const b64 = (text: string) => Buffer.from(text).toString("base64");

/**
 * Fake helpers: `docker-credential-fake` answers per host read from stdin (and records what it
 * was asked), `-empty` has nothing, `-broken` fails, `-garbage` prints a secret that is not JSON.
 */
beforeAll(async () => {
  bin = join(scratch.root(), "bin");
  await mkdir(bin, { recursive: true });
  const helpers: Record<string, string> = {
    fake: `#!/bin/sh
[ "$1" = get ] || exit 3
read host
echo "$host" >> "${bin}/asked"
case "$host" in
  reg.example.com) echo '{"ServerURL":"reg.example.com","Username":"helper-user","Secret":"helper-secret"}' ;;
  https://index.docker.io/v1/) echo '{"ServerURL":"x","Username":"<token>","Secret":"hub-identity"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`,
    empty: `#!/bin/sh\necho "credentials not found in native keychain"\nexit 1\n`,
    broken: `#!/bin/sh\necho "error getting credentials - err: exit status 1, out: keychain locked" >&2\nexit 1\n`,
    garbage: `#!/bin/sh\necho "Secret: top-secret-value"\n`,
  };
  for (const [name, script] of Object.entries(helpers)) {
    const path = join(bin, `docker-credential-${name}`);
    await writeFile(path, script);
    await chmod(path, 0o755);
  }
  env = { PATH: `${bin}:/usr/bin:/bin`, HOME: scratch.root() };
});

async function config(doc: unknown): Promise<string> {
  const dir = scratch.fresh("config");
  await mkdir(dir, { recursive: true });
  const path = join(dir, "config.json");
  await writeFile(path, typeof doc === "string" ? doc : JSON.stringify(doc));
  return path;
}

describe("dockerConfigPath", () => {
  it("honours DOCKER_CONFIG, else ~/.docker, and an explicit path first", () => {
    expect(dockerConfigPath({ env: { DOCKER_CONFIG: "/etc/dc", HOME: "/home/u" } })).toBe(
      "/etc/dc/config.json",
    );
    expect(dockerConfigPath({ env: { HOME: "/home/u" } })).toBe("/home/u/.docker/config.json");
    expect(dockerConfigPath({ path: "/x/c.json", env: { DOCKER_CONFIG: "/etc/dc" } })).toBe("/x/c.json");
  });
});

describe("dockerCredentials", () => {
  it("reads auths entries under any of docker's key spellings", async () => {
    const path = await config({
      auths: {
        "https://reg.example.com/v1/": { auth: b64("alice:pa:ss") },
        "localhost:5000": { username: "bob", password: "pw" },
        "https://index.docker.io/v1/": { auth: b64("hubuser:hubpw") },
        "token.example.com": { identitytoken: "refresh" },
      },
    });
    expect(await dockerCredentials("reg.example.com", { path, env })).toEqual({
      kind: "basic",
      username: "alice",
      password: "pa:ss",
    });
    expect(await dockerCredentials("localhost:5000", { path, env })).toMatchObject({ username: "bob" });
    expect(await dockerCredentials("docker.io", { path, env })).toMatchObject({ username: "hubuser" });
    expect(await dockerCredentials("token.example.com", { path, env })).toEqual({
      kind: "identity",
      token: "refresh",
    });
    expect(await dockerCredentials("other.example.com", { path, env })).toBeUndefined();
  });

  it("finds the config through DOCKER_CONFIG; a missing file means anonymous", async () => {
    const path = await config({ auths: { "reg.example.com": { auth: b64("c:d") } } });
    const dir = path.slice(0, -"/config.json".length);
    expect(await dockerCredentials("reg.example.com", { env: { ...env, DOCKER_CONFIG: dir } })).toMatchObject(
      {
        username: "c",
      },
    );
    expect(
      await dockerCredentials("reg.example.com", { env: { ...env, DOCKER_CONFIG: "/nonexistent" } }),
    ).toBe(undefined);
  });

  it("runs the host's credHelper, the credsStore otherwise, with the host on stdin", async () => {
    const path = await config({
      credHelpers: { "reg.example.com": "fake" },
      credsStore: "fake",
      auths: { "reg.example.com": { auth: b64("shadowed:pw") } },
    });
    expect(await dockerCredentials("reg.example.com", { path, env })).toEqual({
      kind: "basic",
      username: "helper-user",
      password: "helper-secret",
    });
    // Docker Hub through the credsStore, under docker's server name; `<token>` means identity token.
    expect(await dockerCredentials("docker.io", { path, env })).toEqual({
      kind: "identity",
      token: "hub-identity",
    });
    // The store has nothing for this host: anonymous.
    expect(await dockerCredentials("nothing.example.com", { path, env })).toBeUndefined();
  });

  it("prefers an auths entry over the credsStore", async () => {
    const path = await config({
      credsStore: "empty",
      auths: { "reg.example.com": { auth: b64("direct:pw") } },
    });
    expect(await dockerCredentials("reg.example.com", { path, env })).toMatchObject({ username: "direct" });
    expect(await dockerCredentials("other.example.com", { path, env })).toBeUndefined();
  });

  it("names a missing helper and a failing one, never quoting a secret", async () => {
    const missing = await config({ credsStore: "nosuchhelper" });
    await expectEcrxError(
      dockerCredentials("reg.example.com", { path: missing, env }),
      "AUTH",
      /credential helper docker-credential-nosuchhelper \(named in credsStore of .*config.json\) is not installed/,
    );
    const broken = await config({ credHelpers: { "reg.example.com": "broken" } });
    await expectEcrxError(
      dockerCredentials("reg.example.com", { path: broken, env }),
      "AUTH",
      /docker-credential-broken .* failed: error getting credentials - err: exit status 1, out: keychain locked/,
    );
    const garbage = await config({ credHelpers: { "reg.example.com": "garbage" } });
    const err = await dockerCredentials("reg.example.com", { path: garbage, env }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/answered something that is not JSON/);
    expect((err as Error).message).not.toContain("top-secret-value");
  });

  it("reports a malformed config file as AUTH", async () => {
    const path = await config("{ not json");
    await expectEcrxError(
      dockerCredentials("reg.example.com", { path, env }),
      "AUTH",
      /cannot read docker config/,
    );
  });
});

describe("runCredentialHelper", () => {
  it("returns undefined for 'credentials not found'", async () => {
    expect(await runCredentialHelper("empty", "reg.example.com", { env })).toBeUndefined();
  });
});
