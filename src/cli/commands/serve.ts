import type { Command } from "commander";
import { EcrxError } from "../../errors.js";
import {
  describeNetwork,
  describeProfiles,
  isShaped,
  MAX_API_LATENCY_MS,
  MAX_RTT_MS,
  parseMilliseconds,
  parseRate,
  resolveNetwork,
  type NetworkShape,
} from "../../emulator/network.js";
import { serve, type RunningServer, type ServeOptions } from "../../emulator/server.js";

interface ServeFlags {
  host: string;
  port: string;
  data?: string;
  region: string;
  account: string;
  accessKeyId: string;
  secretAccessKey: string;
  rates: string;
  faults?: string;
  faultSeed?: string;
  registryMount?: boolean;
  network?: string;
  rtt?: string;
  connBandwidth?: string;
  apiLatency?: string;
}

function integerFlag(flag: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new EcrxError("USAGE", `invalid ${flag} "${value}": expected an integer in ${min}..${max}`);
  }
  return Number(value);
}

/** The network of --network PROFILE, overridden by --rtt, --conn-bandwidth and --api-latency. */
function networkFromFlags(flags: ServeFlags): NetworkShape | undefined {
  const overrides: NetworkShape = {
    ...(flags.rtt === undefined ? {} : { rttMs: parseMilliseconds(flags.rtt, "--rtt", MAX_RTT_MS) }),
    ...(flags.connBandwidth === undefined
      ? {}
      : { connBandwidth: parseRate(flags.connBandwidth, "--conn-bandwidth") }),
    ...(flags.apiLatency === undefined
      ? {}
      : { apiLatencyMs: parseMilliseconds(flags.apiLatency, "--api-latency", MAX_API_LATENCY_MS) }),
  };
  if (flags.network === undefined && Object.keys(overrides).length === 0) return undefined;
  const network = resolveNetwork(flags.network, overrides);
  return isShaped(network) ? network : undefined;
}

/** Turns the flags into ServeOptions; throws USAGE on a bad value (serve() checks the rest). */
export function serveOptionsFromFlags(flags: ServeFlags): ServeOptions {
  if (flags.rates !== "aws" && flags.rates !== "off") {
    throw new EcrxError("USAGE", `invalid --rates "${flags.rates}": expected aws or off`);
  }
  const network = networkFromFlags(flags);
  return {
    host: flags.host,
    port: integerFlag("--port", flags.port, 0, 65535),
    ...(flags.data === undefined ? {} : { dataDir: flags.data }),
    region: flags.region,
    accountId: flags.account,
    accessKeyId: flags.accessKeyId,
    secretAccessKey: flags.secretAccessKey,
    rates: flags.rates,
    ...(flags.faults === undefined ? {} : { faults: flags.faults }),
    ...(flags.faultSeed === undefined
      ? {}
      : { faultSeed: integerFlag("--fault-seed", flags.faultSeed, 0, 2 ** 31 - 1) }),
    ...(flags.registryMount ? { registryMount: true } : {}),
    ...(network === undefined ? {} : { network }),
  };
}

/** Quotes a value for a POSIX shell when it needs it. */
function shellQuote(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

export function describeServer(
  server: RunningServer,
  options: { temporaryData: boolean; faults?: string },
): string {
  const lines = [
    `ecrx serve: local ECR listening on ${server.url} (ECR API, ECR Public API, registry API, download URLs)`,
    `  data:              ${server.dataDir}${options.temporaryData ? " (temporary, removed on exit)" : ""}`,
    `  account / region:  ${server.accountId} / ${server.region} (ECR Public: us-east-1)`,
    `  image references:  ${server.registryHost}/<repository>:<tag>`,
    `  ECR Public:        public.ecr.aws/${server.publicRegistryAlias}/<repository>:<tag> (through AWS_ENDPOINT_URL_ECR_PUBLIC)`,
    `  registry (v2):     ${server.host}:${server.port} for skopeo and docker: user AWS, password from \`aws ecr get-login-password --endpoint-url ${server.url}\``,
  ];
  if (options.faults !== undefined) {
    lines.push(`  faults:            ${options.faults} (--fault-seed ${server.faultSeed} repeats them)`);
  }
  if (server.network !== undefined) lines.push(`  network:           ${describeNetwork(server.network)}`);
  lines.push("", "Paste into your shell:");
  for (const [name, value] of Object.entries(server.env)) lines.push(`export ${name}=${shellQuote(value)}`);
  lines.push("", "Stop with Ctrl-C.");
  return `${lines.join("\n")}\n`;
}

function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      resolve(signal);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}

export function registerServe(program: Command): void {
  program
    .command("serve")
    .description("Run a local ECR (ECR API, ECR Public API, download URLs) for tests and demos.")
    .option("--host <host>", "interface to listen on", "127.0.0.1")
    .option("--port <port>", "port to listen on; 0 picks a free one", "5000")
    .option("--data <dir>", "keep the data in DIR (default: a temporary folder removed on exit)")
    .option("--region <region>", "region of the ECR API", "us-east-1")
    .option("--account <id>", "12-digit account id of the credentials", "000000000000")
    .option("--access-key-id <id>", "the only access key id accepted", "test")
    .option("--secret-access-key <secret>", "its secret access key", "test")
    .option("--rates <mode>", "aws: ECR's default request rates; off: unlimited", "aws")
    .option(
      "--faults <spec>",
      'inject faults, e.g. "UploadLayerPart:lost=0.05,PutImage:throttle=0.3,*:latency=20"',
    )
    .option("--fault-seed <n>", "seed of the fault draws, to repeat a run")
    .option(
      "--registry-mount",
      "let the registry API mount blobs across repositories (ECR's BLOB_MOUNTING setting)",
    )
    .option("--network <profile>", "behave like a distant registry: in-region, cross-region, far, loopback")
    .option("--rtt <ms>", "round-trip time added to every exchange (overrides the profile's)")
    .option(
      "--conn-bandwidth <rate>",
      "cap of each TCP connection, each way, e.g. 40MB/s, 40MiB/s, 320Mbit/s; 0: none (overrides the profile's)",
    )
    .option(
      "--api-latency <ms>",
      "the service's time per API call, its own work counted in; none for downloads (overrides the profile's)",
    )
    .addHelpText(
      "after",
      `
Network profiles (--network); the rates are per TCP connection, each way:
${describeProfiles()
  .map((line) => `  ${line}`)
  .join("\n")}
  --rtt, --conn-bandwidth and --api-latency override the profile's figures, or shape on their own.
  One connection to S3 or ECR moves tens of MB/s however fast the machine is, and less the farther
  it goes, which is why parallel connections pay. --rtt delays each byte by half the round trip each
  way, and a new connection's first byte by one more (the TCP handshake): a request on a new
  connection costs at least 2 round trips, on a kept-alive one 1. The API latency applies to the
  ECR, ECR Public and registry APIs, not to download URLs.

Examples:
  $ ecrx serve                                   # port 5000, data in a temporary folder
  $ ecrx serve --port 0 --data ./ecr-data        # a free port; data kept across restarts
  $ ecrx serve --faults "UploadLayerPart:lost=0.05,*:throttle=0.1" --fault-seed 7
  $ ecrx serve --network cross-region            # rtt 60 ms, 30 MB/s per connection, API 10 ms
  $ ecrx serve --network far --conn-bandwidth 8MB/s`,
    )
    .action(async (flags: ServeFlags) => {
      const options = serveOptionsFromFlags(flags);
      const stopped = untilSignal();
      const server = await serve(options);
      process.stdout.write(
        describeServer(server, {
          temporaryData: options.dataDir === undefined,
          ...(options.faults === undefined ? {} : { faults: options.faults }),
        }),
      );
      const signal = await stopped;
      process.stderr.write(`ecrx serve: ${signal}, stopping\n`);
      await server.close();
    });
}
