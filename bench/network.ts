/**
 * Issue 9's side-by-side targets under emulated networks, every profile in one run:
 *
 *   npm run build && npx tsx bench/network.ts [--profiles in-region,cross-region,far] [--runs 5]
 *     [--only pull,push-many,push-one] [--size-scale 1]
 *
 * Profiles are src/emulator/network.ts's NETWORK_PROFILES (`loopback`: no shaping). For each, one
 * `ecrx serve --network PROFILE --rates off` in a child process, then for each scenario one warm-up
 * and --runs measured runs; within a run each client is a fresh process under /usr/bin/time (wall,
 * user+sys CPU, peak RSS), and the clients take turns in a rotating order:
 *
 * - pull: one image of one 1 GiB layer, pushed once per profile by ecrx (unmeasured), then
 *   `ecrx pull REF oci:DIR:bench` (default settings: ranged GETs of the download URL), the plain
 *   client of bench/baseline-pull-client.ts (BatchGetImage, then for each blob
 *   GetDownloadUrlForLayer, ONE GET on one connection and a sha256; nothing written), and
 *   `skopeo copy docker://127.0.0.1:PORT/REPO:bench oci:DIR:bench` through the registry API (blob
 *   GETs redirected to the download URLs). Each into a fresh directory. After the runs, one `curl`
 *   GET of the layer's download URL measures the link itself (rate from first to last byte).
 * - push-many: 10 layers of 20 MiB, fresh content for every client run (a new seed), to a fresh
 *   repository: `ecrx push oci:LAYOUT REF` (default settings), the same with `--concurrency 1`,
 *   and `skopeo copy --preserve-digests oci:LAYOUT docker://127.0.0.1:PORT/REPO:bench` through
 *   the registry API. (skopeo 1.9 copies from an oci: layout one layer at a time: containers/image's
 *   OCI layout source is not thread-safe; from docker:// it would copy 6 at once.)
 * - push-one: one 1 GiB layer, fresh content every run, `ecrx push` with default settings. Its
 *   layer rate is also given as the wire rate (UploadLayerPart carries each part as base64 in a
 *   JSON body: wire = sum over the parts of 4 * ceil(part / 3) bytes) and as fractions of the
 *   profile's nominal per-connection rate and of the single-connection rates measured by pull (the
 *   plain client's own clock, curl's data phase).
 *
 * Layers are random bytes in real gzip streams (bench/lib/gzip-layout.ts), so that no tool
 * recompresses anything; every push is checked (the manifest digest in the repository is the
 * layout's: skopeo runs with --preserve-digests, and ecrx's summary must say so) and every pull
 * is checked (the layer's file in the output, of the right size; the plain client hashes).
 *
 * MB/s counts layer bytes (10^6), over the process's wall time (start-up included, all clients)
 * and, for ecrx and the plain client, over their own transfer clocks too (start-up excluded).
 * The ratios are given on both where both exist. Load averages (1 min) before and after every
 * client run are recorded. --size-scale 0.1 shrinks the layers (to no less than 5 MiB each) for
 * development. The measured ecrx (client and server) is a copy of dist taken at the start.
 *
 * Results: markdown tables on stdout, progress on stderr, every run in
 * bench/results/network-<timestamp>.json.
 */
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, rm, stat, symlink, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import {
  CreateRepositoryCommand,
  DescribeImagesCommand,
  type ECRClient,
  GetAuthorizationTokenCommand,
  GetDownloadUrlForLayerCommand,
} from "@aws-sdk/client-ecr";
import { startLocalServer, type LocalServer } from "../src/bench/local-server.js";
import { spread, type Spread } from "../src/bench/stats.js";
import { NETWORK_PROFILES, networkProfile, type ResolvedNetworkShape } from "../src/emulator/network.js";
import { choosePartSize } from "../src/transfer/part-size.js";
import { buildGzipLayout, type GzipLayout } from "./lib/gzip-layout.js";
import { ROOT, localEcrClient, measure, type Measured } from "./lib/processes.js";

const execFileAsync = promisify(execFile);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

// ---- profiles --------------------------------------------------------------------------------

/** `ecrx serve --network NAME` (issue 9): the profiles' figures come from the server's own table. */
type Profile = ResolvedNetworkShape;

// ---- options ---------------------------------------------------------------------------------

const SCENARIOS = ["pull", "push-many", "push-one"] as const;
type Scenario = (typeof SCENARIOS)[number];

const { values } = parseArgs({
  options: {
    profiles: { type: "string", default: "in-region,cross-region,far" },
    runs: { type: "string", default: "5" },
    only: { type: "string", multiple: true },
    "size-scale": { type: "string", default: "1" },
  },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs ${values.runs}: a positive integer`);
const scale = Number(values["size-scale"]);
if (!(scale > 0 && scale <= 1)) throw new Error(`--size-scale ${values["size-scale"]}: a number in (0, 1]`);
const profiles: Profile[] = values.profiles.split(",").map((name) => networkProfile(name.trim()));
const scenarios: Scenario[] = (values.only ?? [...SCENARIOS])
  .flatMap((s) => s.split(","))
  .map((s) => {
    if (!(SCENARIOS as readonly string[]).includes(s))
      throw new Error(`--only ${s}: ${SCENARIOS.join(", ")}`);
    return s as Scenario;
  });

/** A layer size scaled by --size-scale, in whole MiB, at least 5 MiB (ECR's smallest part). */
const scaled = (bytes: number) => Math.max(5 * MiB, Math.round((bytes * scale) / MiB) * MiB);
const BIG = scaled(GiB);
const SMALL = scaled(20 * MiB);
const MANY = 10;

// ---- rows ------------------------------------------------------------------------------------

const CLIENTS = {
  "pull:ecrx": "ecrx pull",
  "pull:single": "one GET, one connection",
  "pull:skopeo": "skopeo copy (registry API)",
  "push-many:ecrx": "ecrx push",
  "push-many:ecrx-c1": "ecrx push --concurrency 1",
  "push-many:skopeo": "skopeo copy (registry API)",
  "push-one:ecrx": "ecrx push",
} as const;
type ClientKey = keyof typeof CLIENTS;
const clientsOf = (scenario: Scenario) =>
  (Object.keys(CLIENTS) as ClientKey[]).filter((k) => k.startsWith(`${scenario}:`));

interface Row {
  profile: string;
  scenario: Scenario;
  client: ClientKey;
  /** 0 is the warm-up. */
  run: number;
  /** Layer bytes moved (the config blob, a few hundred bytes, is left out). */
  layerBytes: number;
  wallSeconds: number;
  /** The client's own transfer clock (start-up excluded), when it has one. */
  ownSeconds: number | undefined;
  mbpsWall: number;
  mbpsOwn: number | undefined;
  cpuSeconds: number;
  maxRssMB: number;
  loadBefore: number;
  loadAfter: number;
}

const rows: Row[] = [];

/** One connection's rate, measured with curl. */
interface Link {
  profile: string;
  bytes: number;
  firstByteSeconds: number;
  totalSeconds: number;
  /** Bytes over the whole request. */
  mbps: number;
  /** Bytes over the time from the first byte to the last: the link's rate. */
  dataPhaseMBps: number;
}
const links: Link[] = [];
const started = new Date();
const stamp = started.toISOString().replace(/[:.]/g, "-");
const log = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
const fmt = (n: number | undefined, digits = 1) =>
  n === undefined || Number.isNaN(n) ? "n/a" : n.toFixed(digits);

// ---- set-up ----------------------------------------------------------------------------------

/** The load averages (1, 5, 15 min), as uptime prints them. */
const uptime = async () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(", ");
const work = await mkdtemp(join(tmpdir(), "ecrx-bench-network-"));
// The measured ecrx is a copy of dist taken now: a rebuild in the checkout during a run of 40
// minutes (other work goes on there) changes neither the client nor the server.
const snapshot = join(work, "ecrx");
await cp(join(ROOT, "dist"), join(snapshot, "dist"), { recursive: true });
await writeFile(join(snapshot, "package.json"), JSON.stringify({ type: "module" }));
await symlink(join(ROOT, "node_modules"), join(snapshot, "node_modules"));
const ECRX = join(snapshot, "dist", "cli", "main.js");
await execFileAsync(process.execPath, [ECRX, "pull", "--help"]);
const TSX = join(ROOT, "node_modules/tsx/dist/cli.mjs");
const skopeoVersion = (await execFileAsync("skopeo", ["--version"])).stdout.trim();
const gitHead = (await execFileAsync("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"])).stdout.trim();
const loadAtStart = await uptime();
log(
  `network bench: profiles ${profiles.map((p) => p.name).join(", ")}; ${scenarios.join(", ")}; ` +
    `${runs} runs + 1 warm-up; layers ${BIG / MiB} MiB and ${MANY} x ${SMALL / MiB} MiB; ` +
    `ecrx ${gitHead}; ${loadAtStart}`,
);

/** One profile's server and what the clients need to reach it. */
interface Target {
  profile: Profile;
  server: LocalServer;
  ecr: ECRClient;
  /** host:port of the registry API, for skopeo. */
  hostPort: string;
  /** `AWS:<password>` for skopeo. */
  creds: string;
  env: NodeJS.ProcessEnv;
}

async function startTarget(profile: Profile): Promise<Target> {
  const args = ["--rates", "off", "--network", profile.name];
  const server = await startLocalServer({ cli: ECRX, args });
  const ecr = localEcrClient(server);
  const token = (await ecr.send(new GetAuthorizationTokenCommand({}))).authorizationData![0]!
    .authorizationToken!;
  return {
    profile,
    server,
    ecr,
    hostPort: `127.0.0.1:${new URL(server.url).port}`,
    creds: Buffer.from(token, "base64").toString(),
    env: {
      ...process.env,
      ...server.env,
      // No ~/.aws, ~/.docker or containers auth files of the machine's user.
      HOME: join(work, "home"),
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    },
  };
}

let fresh = 0;
/** A new path under the work directory. */
const freshPath = (label: string) => join(work, `${label}-${++fresh}`);

/** Runs one client process, checks it, records its row. */
async function runClient(
  target: Target,
  scenario: Scenario,
  client: ClientKey,
  run: number,
  layerBytes: number,
  command: string,
  args: string[],
  check: (m: Measured) => Promise<number | undefined>,
): Promise<Row> {
  const loadBefore = loadavg()[0]!;
  const m = await measure(command, args, { ...target.env, ECRX_CACHE_DIR: freshPath("cache") });
  const loadAfter = loadavg()[0]!;
  if (m.code !== 0) {
    throw new Error(`${client} (${target.profile.name}) exited ${m.code}: ${m.stderr.trim().slice(-2000)}`);
  }
  const ownSeconds = await check(m);
  const row: Row = {
    profile: target.profile.name,
    scenario,
    client,
    run,
    layerBytes,
    wallSeconds: m.wallSeconds,
    ownSeconds,
    mbpsWall: layerBytes / 1e6 / m.wallSeconds,
    mbpsOwn: ownSeconds === undefined ? undefined : layerBytes / 1e6 / ownSeconds,
    cpuSeconds: m.userSeconds + m.systemSeconds,
    maxRssMB: m.maxRssBytes / 1e6,
    loadBefore,
    loadAfter,
  };
  log(
    `[${target.profile.name}] ${scenario} run ${run}/${runs}${run === 0 ? " (warm-up)" : ""} ${client}: ` +
      `${fmt(row.mbpsWall)} MB/s wall (${fmt(row.wallSeconds, 2)} s), own clock ${fmt(row.mbpsOwn)} MB/s, ` +
      `CPU ${fmt(row.cpuSeconds, 2)} s, RSS ${fmt(row.maxRssMB, 0)} MB, load ${fmt(loadBefore, 2)} -> ${fmt(loadAfter, 2)}`,
  );
  if (run > 0) rows.push(row);
  return row;
}

/** The `--json` summary line of an ecrx transfer. */
function ecrxSummary(m: Measured): { digest: string; seconds: number; bytesSent: number } {
  const line = m.stdout.trim().split("\n").at(-1) ?? "";
  const summary = JSON.parse(line) as { type: string; digest: string; seconds: number; bytesSent: number };
  if (summary.type !== "summary") throw new Error(`no ecrx summary: ${line}`);
  return summary;
}

/** The layer's file, of its size, in a pulled OCI layout. */
async function checkPulled(dir: string, layout: GzipLayout): Promise<void> {
  for (const layer of layout.layers) {
    const file = join(dir, "blobs", "sha256", layer.digest.slice("sha256:".length));
    const size = (await stat(file)).size;
    if (size !== layer.size) throw new Error(`${file}: ${size} bytes, expected ${layer.size}`);
  }
}

/** The repository's image at `tag` is the layout's manifest. */
async function checkPushed(target: Target, repo: string, layout: GzipLayout): Promise<void> {
  const described = await target.ecr.send(
    new DescribeImagesCommand({ repositoryName: repo, imageIds: [{ imageTag: layout.tag }] }),
  );
  const digest = described.imageDetails?.[0]?.imageDigest;
  if (digest !== layout.manifestDigest) {
    throw new Error(`${repo}:${layout.tag} is ${digest}, expected ${layout.manifestDigest}`);
  }
}

/** Rotates the clients' order from run to run, so that none always goes first. */
const rotate = <T>(items: readonly T[], by: number): T[] =>
  items.map((_, i) => items[(i + by) % items.length]!);

// ---- scenarios -------------------------------------------------------------------------------

async function pullScenario(target: Target): Promise<void> {
  const name = target.profile.name;
  log(`[${name}] pull: building a ${BIG / MiB} MiB layer and pushing it with ecrx (not measured)`);
  const layout = await buildGzipLayout(freshPath("pull-layout"), [BIG], `${stamp}/${name}/pull`);
  const repo = `pull-${name}`;
  await target.ecr.send(new CreateRepositoryCommand({ repositoryName: repo }));
  const pushed = await measure(
    "node",
    [ECRX, "push", layout.reference, `${target.server.registryHost}/${repo}:${layout.tag}`, "-q"],
    { ...target.env, ECRX_CACHE_DIR: freshPath("cache") },
  );
  if (pushed.code !== 0) throw new Error(`push of the pull image failed: ${pushed.stderr}`);
  await checkPushed(target, repo, layout);
  log(`[${name}] pull: image pushed in ${fmt(pushed.wallSeconds, 1)} s`);
  await rm(layout.path, { recursive: true, force: true });

  const bytes = layout.layerBytes;
  for (let run = 0; run <= runs; run++) {
    for (const client of rotate(clientsOf("pull"), run)) {
      if (client === "pull:single") {
        await runClient(
          target,
          "pull",
          client,
          run,
          bytes,
          "node",
          [TSX, join(ROOT, "bench/baseline-pull-client.ts"), target.server.url, repo, layout.tag],
          async (m) => {
            const out = JSON.parse(m.stdout.trim()) as { seconds: number; bytes: number };
            if (out.bytes !== bytes + layout.config.size) throw new Error(`single GET: ${out.bytes} bytes`);
            return out.seconds;
          },
        );
        continue;
      }
      const dir = freshPath("pulled");
      const args =
        client === "pull:ecrx"
          ? [
              ECRX,
              "pull",
              `${target.server.registryHost}/${repo}:${layout.tag}`,
              `oci:${dir}:${layout.tag}`,
              "--json",
            ]
          : [
              "copy",
              "--src-creds",
              target.creds,
              "--src-tls-verify=false",
              `docker://${target.hostPort}/${repo}:${layout.tag}`,
              `oci:${dir}:${layout.tag}`,
            ];
      await runClient(
        target,
        "pull",
        client,
        run,
        bytes,
        client === "pull:ecrx" ? "node" : "skopeo",
        args,
        async (m) => {
          await checkPulled(dir, layout);
          await rm(dir, { recursive: true, force: true });
          if (client !== "pull:ecrx") return undefined;
          const summary = ecrxSummary(m);
          if (summary.digest !== layout.manifestDigest) throw new Error(`ecrx pulled ${summary.digest}`);
          return summary.seconds;
        },
      );
    }
  }
  await measureLink(target, repo, layout);
}

/**
 * The link itself: one `curl` GET of the layer's download URL (one connection, nothing but the
 * transfer), its rate over the time from the first byte to the last. Once per profile, after the
 * pulls; skipped when curl is missing.
 */
async function measureLink(target: Target, repo: string, layout: GzipLayout): Promise<void> {
  const name = target.profile.name;
  const layer = layout.layers[0]!;
  const { downloadUrl } = await target.ecr.send(
    new GetDownloadUrlForLayerCommand({ repositoryName: repo, layerDigest: layer.digest }),
  );
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync("curl", [
      "-sS",
      "--fail",
      "-o",
      "/dev/null",
      "-w",
      "%{size_download} %{time_starttransfer} %{time_total}",
      downloadUrl!,
    ]));
  } catch (err) {
    log(`[${name}] curl of the download URL failed, no link measurement: ${(err as Error).message}`);
    return;
  }
  const [size, firstByte, total] = stdout.trim().split(" ").map(Number) as [number, number, number];
  if (size !== layer.size) throw new Error(`curl fetched ${size} bytes of ${layer.size}`);
  const link: Link = {
    profile: name,
    bytes: size,
    firstByteSeconds: firstByte,
    totalSeconds: total,
    mbps: size / 1e6 / total,
    dataPhaseMBps: size / 1e6 / (total - firstByte),
  };
  links.push(link);
  const cap = target.profile.connBandwidth / 1e6;
  if (cap > 0 && (link.dataPhaseMBps > cap * 1.05 || link.dataPhaseMBps < cap * 0.8)) {
    log(
      `[${name}] WARNING: one connection moved ${fmt(link.dataPhaseMBps, 2)} MB/s against a cap of ` +
        `${fmt(cap, 2)} MB/s: is the server's shaping what the profile says (a stale dist?)`,
    );
  }
  log(
    `[${name}] link: curl GET of ${fmt(size / 1e6, 0)} MB on one connection: first byte after ` +
      `${fmt(firstByte, 3)} s, then ${fmt(link.dataPhaseMBps, 2)} MB/s (${fmt(link.mbps, 2)} MB/s overall)`,
  );
}

/** push-many and push-one: a fresh layout and repository for every client run. */
async function pushScenario(target: Target, scenario: "push-many" | "push-one"): Promise<void> {
  const name = target.profile.name;
  const sizes = scenario === "push-many" ? Array.from({ length: MANY }, () => SMALL) : [BIG];
  for (let run = 0; run <= runs; run++) {
    for (const client of rotate(clientsOf(scenario), run)) {
      const tool = client.slice(scenario.length + 1);
      const layout = await buildGzipLayout(
        freshPath(`${scenario}-layout`),
        sizes,
        `${stamp}/${name}/${client}/${run}`,
      );
      const repo = `${scenario}-${tool}-${run}`;
      await target.ecr.send(new CreateRepositoryCommand({ repositoryName: repo }));
      const args =
        tool === "skopeo"
          ? [
              "copy",
              "--preserve-digests",
              "--dest-creds",
              target.creds,
              "--dest-tls-verify=false",
              layout.reference,
              `docker://${target.hostPort}/${repo}:${layout.tag}`,
            ]
          : [
              ECRX,
              "push",
              layout.reference,
              `${target.server.registryHost}/${repo}:${layout.tag}`,
              "--json",
              ...(tool === "ecrx-c1" ? ["--concurrency", "1"] : []),
            ];
      await runClient(
        target,
        scenario,
        client,
        run,
        layout.layerBytes,
        tool === "skopeo" ? "skopeo" : "node",
        args,
        async (m) => {
          await checkPushed(target, repo, layout);
          if (tool === "skopeo") return undefined;
          const summary = ecrxSummary(m);
          if (summary.digest !== layout.manifestDigest) throw new Error(`ecrx pushed ${summary.digest}`);
          if (summary.bytesSent !== layout.layerBytes + layout.config.size) {
            throw new Error(`ecrx sent ${summary.bytesSent} bytes: some blob was skipped`);
          }
          return summary.seconds;
        },
      );
      await rm(layout.path, { recursive: true, force: true });
    }
  }
}

// ---- run -------------------------------------------------------------------------------------

const loads: Record<string, { before: string; after: string }> = {};
try {
  await mkdir(join(work, "home"), { recursive: true });
  for (const profile of profiles) {
    const before = await uptime();
    log(
      `[${profile.name}] starting ecrx serve${profile.name === "loopback" ? "" : ` --network ${profile.name}`}`,
    );
    const target = await startTarget(profile);
    try {
      for (const scenario of scenarios) {
        if (scenario === "pull") await pullScenario(target);
        else await pushScenario(target, scenario);
      }
    } finally {
      target.ecr.destroy();
      await target.server.stop();
    }
    loads[profile.name] = { before, after: await uptime() };
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
const loadAtEnd = await uptime();

// ---- report ----------------------------------------------------------------------------------

/** Base64 bytes of the UploadLayerPart bodies of a layer of `size` bytes (default part size). */
function wireBytes(size: number): number {
  const part = choosePartSize(size, 4200);
  let wire = 0;
  for (let left = size; left > 0; left -= part) wire += 4 * Math.ceil(Math.min(part, left) / 3);
  return wire;
}

interface Summary {
  profile: string;
  scenario: Scenario;
  client: ClientKey;
  runs: number;
  layerBytes: number;
  mbpsWall: Spread;
  mbpsOwn: Spread | undefined;
  cpuSeconds: Spread;
  maxRssMB: Spread;
  loadBefore: Spread;
  loadAfter: Spread;
}

const summaries: Summary[] = [];
for (const profile of profiles) {
  for (const scenario of scenarios) {
    for (const client of clientsOf(scenario)) {
      const of = rows.filter((r) => r.profile === profile.name && r.client === client);
      if (of.length === 0) continue;
      const own = of.map((r) => r.mbpsOwn).filter((v): v is number => v !== undefined);
      summaries.push({
        profile: profile.name,
        scenario,
        client,
        runs: of.length,
        layerBytes: of[0]!.layerBytes,
        mbpsWall: spread(of.map((r) => r.mbpsWall)),
        mbpsOwn: own.length ? spread(own) : undefined,
        cpuSeconds: spread(of.map((r) => r.cpuSeconds)),
        maxRssMB: spread(of.map((r) => r.maxRssMB)),
        loadBefore: spread(of.map((r) => r.loadBefore)),
        loadAfter: spread(of.map((r) => r.loadAfter)),
      });
    }
  }
}
const find = (profile: string, client: ClientKey) =>
  summaries.find((s) => s.profile === profile && s.client === client);

interface Ratio {
  profile: string;
  name: string;
  target: number;
  /** Ratio of the medians over wall time. */
  wall: number;
  /** Ratio of the medians over the clients' own clocks, when both have one. */
  own: number | undefined;
}

/** The 1-layer push against one connection's rate: nominal, and as measured two ways. */
interface PushOne {
  profile: string;
  /** Layer bytes over ecrx's own transfer clock. */
  layerMBps: number;
  /** wire / layer bytes: base64 of every part (4 * ceil(part / 3)). */
  wireFactor: number;
  wireMBps: number;
  references: { label: string; mbps: number; layer: number; wire: number }[];
}

const ratios: Ratio[] = [];
const pushOne: PushOne[] = [];
for (const profile of profiles) {
  const ratio = (name: string, target: number, a: ClientKey, b: ClientKey) => {
    const x = find(profile.name, a);
    const y = find(profile.name, b);
    if (!x || !y) return;
    const own = x.mbpsOwn && y.mbpsOwn ? x.mbpsOwn.median / y.mbpsOwn.median : undefined;
    ratios.push({ profile: profile.name, name, target, wall: x.mbpsWall.median / y.mbpsWall.median, own });
  };
  ratio("pull: ecrx / one connection", 4, "pull:ecrx", "pull:single");
  ratio("pull: ecrx / skopeo", 3, "pull:ecrx", "pull:skopeo");
  ratio("push 10 layers: ecrx / one blob at a time", 4, "push-many:ecrx", "push-many:ecrx-c1");
  ratio("push 10 layers: ecrx / skopeo", 1.5, "push-many:ecrx", "push-many:skopeo");
  const one = find(profile.name, "push-one:ecrx");
  if (one) {
    // The transfer's own clock: the comparison is with a network rate, not with another process.
    const layerMBps = one.mbpsOwn?.median ?? one.mbpsWall.median;
    const wireFactor = wireBytes(one.layerBytes) / one.layerBytes;
    const wireMBps = layerMBps * wireFactor;
    const references: [string, number | undefined][] = [
      ["nominal cap", profile.connBandwidth / 1e6],
      ["one GET, plain client", find(profile.name, "pull:single")?.mbpsOwn?.median],
      ["one GET, curl data phase", links.find((l) => l.profile === profile.name)?.dataPhaseMBps],
    ];
    pushOne.push({
      profile: profile.name,
      layerMBps,
      wireFactor,
      wireMBps,
      references: references
        .filter((r): r is [string, number] => r[1] !== undefined && r[1] > 0)
        .map(([label, mbps]) => ({ label, mbps, layer: layerMBps / mbps, wire: wireMBps / mbps })),
    });
  }
}

const range = (s: Spread | undefined, digits = 1) =>
  s ? `${fmt(s.median, digits)} (${fmt(s.min, digits)}..${fmt(s.max, digits)})` : "n/a";
const percent = (x: number | undefined) => (x === undefined ? "n/a" : `${(x * 100).toFixed(0)}%`);
const SCENARIO_TITLES: Record<Scenario, string> = {
  pull: `pull, 1 layer of ${BIG / MiB} MiB`,
  "push-many": `push, ${MANY} layers of ${SMALL / MiB} MiB`,
  "push-one": `push, 1 layer of ${BIG / MiB} MiB`,
};

const out: string[] = [];
for (const profile of profiles) {
  const capText = profile.connBandwidth
    ? `rtt ${profile.rttMs} ms, ${profile.connBandwidth / 1e6} MB/s per connection each way, ` +
      `API latency ${profile.apiLatencyMs} ms: ${NETWORK_PROFILES[profile.name]?.about ?? ""}`
    : (NETWORK_PROFILES[profile.name]?.about ?? "no shaping");
  out.push(`### ${profile.name} (${capText})`, "");
  out.push(
    `load average (1, 5, 15 min): ${loads[profile.name]?.before ?? "?"} → ${loads[profile.name]?.after ?? "?"}`,
    "",
  );
  out.push(
    "| image | client | MB/s (wall) | MB/s (own clock) | CPU s | peak RSS MB | load 1 min before → after |",
    "| ----- | ------ | ----------- | ---------------- | ----- | ----------- | ------------------------- |",
  );
  for (const s of summaries.filter((x) => x.profile === profile.name)) {
    out.push(
      `| ${SCENARIO_TITLES[s.scenario]} | ${CLIENTS[s.client]} | ${range(s.mbpsWall)} | ${range(s.mbpsOwn)} | ` +
        `${fmt(s.cpuSeconds.median, 2)} | ${fmt(s.maxRssMB.median, 0)} | ` +
        `${fmt(s.loadBefore.median, 2)} → ${fmt(s.loadAfter.median, 2)} |`,
    );
  }
  const profileRatios = ratios.filter((r) => r.profile === profile.name);
  if (profileRatios.length) {
    out.push(
      "",
      "| ratio of medians | wall | own clocks | target |",
      "| ---------------- | ---- | ---------- | ------ |",
    );
    for (const r of profileRatios) {
      out.push(`| ${r.name} | ${fmt(r.wall, 2)} | ${fmt(r.own, 2)} | ≥ ${r.target} |`);
    }
  }
  const link = links.find((l) => l.profile === profile.name);
  if (link) {
    out.push(
      "",
      `one connection, curl GET of the ${fmt(link.bytes / 1e6, 0)} MB layer: first byte after ` +
        `${fmt(link.firstByteSeconds, 3)} s, then ${fmt(link.dataPhaseMBps, 2)} MB/s ` +
        `(${fmt(link.mbps, 2)} MB/s over the whole request)`,
    );
  }
  const one = pushOne.find((p) => p.profile === profile.name);
  if (one) {
    const refs = one.references;
    out.push(
      "",
      `| push, 1 layer (ecrx's own clock) | MB/s | ${refs.map((r) => `of ${r.label} (${fmt(r.mbps, 1)} MB/s)`).join(" | ")} |`,
      `| -------------------------------- | ---- | ${refs.map(() => "---").join(" | ")} |`,
      `| layer bytes | ${fmt(one.layerMBps)} | ${refs.map((r) => percent(r.layer)).join(" | ")} |`,
      `| wire bytes (base64, × ${fmt(one.wireFactor, 4)}) | ${fmt(one.wireMBps)} | ` +
        `${refs.map((r) => percent(r.wire)).join(" | ")} |`,
      "",
      "target: wire ≥ 90% of the cap",
    );
  }
  out.push("");
}
out.push(`load average (1, 5, 15 min) at start: ${loadAtStart}; at end: ${loadAtEnd}`);
process.stdout.write(`${out.join("\n")}\n`);

await mkdir(join(ROOT, "bench/results"), { recursive: true });
const file = join(ROOT, `bench/results/network-${stamp}.json`);
await writeFile(
  file,
  JSON.stringify(
    {
      date: started.toISOString(),
      finished: new Date().toISOString(),
      ecrx: gitHead,
      node: process.version,
      cpus: cpus().length,
      skopeo: skopeoVersion,
      runs,
      sizeScale: scale,
      layerSizes: { big: BIG, small: SMALL, many: MANY },
      profiles,
      loadAtStart,
      loadAtEnd,
      loads,
      summaries,
      ratios,
      pushOne,
      links,
      rows,
    },
    null,
    2,
  ),
);
log(`results: ${file}`);
