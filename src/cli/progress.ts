import cliProgress from "cli-progress";
import type { TransferEvent } from "../transfer/events.js";
import { withInterrupt } from "./common.js";
import { formatBytes, formatRate, shortDigest } from "./format.js";

export type OutputMode = "tty" | "plain" | "json" | "quiet";

/** Picks the output: --json and --quiet win; bars on a terminal; plain lines elsewhere. */
export function outputMode(
  options: { json?: boolean; quiet?: boolean },
  stream = process.stderr,
): OutputMode {
  if (options.json) return "json";
  if (options.quiet) return "quiet";
  return stream.isTTY && process.env.TERM !== "dumb" ? "tty" : "plain";
}

/** Renders transfer events; `finish` must be called once at the end, on success or failure. */
export interface ProgressRenderer {
  onEvent(event: TransferEvent): void;
  finish(): void;
}

export function createRenderer(mode: OutputMode, label: string): ProgressRenderer {
  switch (mode) {
    case "json":
      return new JsonRenderer();
    case "quiet":
      return { onEvent() {}, finish() {} };
    case "plain":
      return new PlainRenderer();
    case "tty":
      return new BarRenderer(label);
  }
}

/** NDJSON on stdout: every event but byte progress, which is folded to one line a second per blob. */
class JsonRenderer implements ProgressRenderer {
  private readonly pending = new Map<string, number>();
  private readonly timer = setInterval(() => this.flushProgress(), 1000).unref();

  onEvent(event: TransferEvent): void {
    if (event.type === "blob-progress") {
      this.pending.set(event.id, (this.pending.get(event.id) ?? 0) + event.bytes);
      return;
    }
    if (event.type === "blob-done" || event.type === "blob-retry") this.flushProgress();
    process.stdout.write(`${JSON.stringify(event)}\n`);
  }

  private flushProgress(): void {
    for (const [id, bytes] of this.pending) {
      process.stdout.write(`${JSON.stringify({ type: "blob-progress", id, bytes })}\n`);
    }
    this.pending.clear();
  }

  finish(): void {
    clearInterval(this.timer);
    this.flushProgress();
  }
}

/** One line per blob started, skipped or done: logs of CI jobs. */
class PlainRenderer implements ProgressRenderer {
  private readonly started = new Map<string, number>();

  onEvent(event: TransferEvent): void {
    const out = (line: string) => process.stderr.write(`${line}\n`);
    switch (event.type) {
      case "plan":
        out(`${event.blobs} blob(s) to send, ${formatBytes(event.bytes)}`);
        break;
      case "blob-skipped":
        out(`${shortDigest(event.digest)}: already there (${formatBytes(event.size)})`);
        break;
      case "blob-start":
        this.started.set(event.id, performance.now());
        break;
      case "blob-retry":
        out(`${shortDigest(event.id)}: retrying (attempt ${event.attempt}): ${event.reason}`);
        break;
      case "blob-done": {
        const seconds = (performance.now() - (this.started.get(event.id) ?? performance.now())) / 1000;
        out(`${shortDigest(event.digest)}: sent ${formatBytes(event.size)} in ${seconds.toFixed(1)} s`);
        break;
      }
      case "manifest-put":
        out(`manifest ${event.digest}${event.tags.length ? ` tagged ${event.tags.join(", ")}` : ""}`);
        break;
      case "notice":
        out(`note: ${event.message}`);
        break;
      case "blob-progress":
        break;
    }
  }

  finish(): void {}
}

interface BarPayload {
  name: string;
  /** Throughput so far, e.g. `12.3 MB/s`. */
  rate: string;
  /** What happens to the bytes on the way, e.g. `gzip`. */
  note: string;
}

/** A bar per blob in flight and one for the whole image, on stderr: bytes, MB/s and ETA each. */
class BarRenderer implements ProgressRenderer {
  private readonly multibar: cliProgress.MultiBar;
  private readonly bars = new Map<string, cliProgress.SingleBar>();
  private readonly sent = new Map<string, number>();
  private readonly blobStartedAt = new Map<string, number>();
  private total: cliProgress.SingleBar | undefined;
  private totalSent = 0;
  private readonly startedAt = performance.now();

  constructor(private readonly label: string) {
    this.multibar = new cliProgress.MultiBar(
      {
        format: (options, params, payload: BarPayload) => {
          const bar = cliProgress.Format.BarFormat(params.progress, options);
          const done = `${formatBytes(params.value)}/${formatBytes(params.total)}`;
          const eta = Number.isFinite(params.eta) && params.eta > 0 ? ` ETA ${params.eta}s` : "";
          const note = payload.note ? ` ${payload.note}` : "";
          return `${payload.name.padEnd(14)} ${bar} ${done.padStart(21)} ${payload.rate.padStart(10)}${eta}${note}`;
        },
        hideCursor: true,
        // The bars go when the transfer ends: what stays on the screen is the log of blobs and the
        // summary the command prints.
        clearOnComplete: true,
        stopOnComplete: false,
        barsize: 24,
        etaBuffer: 30,
        fps: 8,
        stream: process.stderr,
      },
      cliProgress.Presets.shades_classic,
    );
  }

  private rate(): string {
    return formatRate(this.totalSent, (performance.now() - this.startedAt) / 1000);
  }

  onEvent(event: TransferEvent): void {
    switch (event.type) {
      case "plan":
        this.total = this.multibar.create(Math.max(event.bytes, 1), 0, {
          name: this.label,
          rate: "",
          note: "",
        } satisfies BarPayload);
        break;
      case "blob-skipped":
        this.multibar.log(`${shortDigest(event.digest)}: already there (${formatBytes(event.size)})\n`);
        break;
      case "blob-start":
        this.sent.set(event.id, 0);
        this.blobStartedAt.set(event.id, performance.now());
        this.bars.set(
          event.id,
          this.multibar.create(Math.max(event.size, 1), 0, {
            name: shortDigest(event.digest ?? event.id),
            rate: "",
            note: event.transform ?? "",
          } satisfies BarPayload),
        );
        break;
      case "blob-progress": {
        const value = (this.sent.get(event.id) ?? 0) + event.bytes;
        this.sent.set(event.id, value);
        this.totalSent += event.bytes;
        const started = this.blobStartedAt.get(event.id) ?? this.startedAt;
        this.bars.get(event.id)?.update(value, {
          rate: formatRate(value, (performance.now() - started) / 1000),
        });
        this.total?.update(this.totalSent, { rate: this.rate() });
        break;
      }
      case "blob-retry": {
        // The failed attempt's bytes are sent again: take them off the bars.
        this.totalSent -= event.rolledBack;
        this.sent.set(event.id, 0);
        this.bars.get(event.id)?.update(0);
        this.multibar.log(`${shortDigest(event.id)}: retrying: ${event.reason}\n`);
        break;
      }
      case "blob-done": {
        const bar = this.bars.get(event.id);
        if (bar) this.multibar.remove(bar);
        this.bars.delete(event.id);
        this.blobStartedAt.delete(event.id);
        this.multibar.log(`${shortDigest(event.digest)}: sent ${formatBytes(event.size)}\n`);
        break;
      }
      case "manifest-put":
        this.multibar.log(
          `manifest ${event.digest}${event.tags.length ? ` tagged ${event.tags.join(", ")}` : ""}\n`,
        );
        break;
      case "notice":
        this.multibar.log(`note: ${event.message}\n`);
        break;
    }
  }

  finish(): void {
    // Lines logged since the last frame are printed by the next frame only: draw one, so that
    // stopping (which clears the bars) loses none of them.
    this.multibar.update();
    this.multibar.stop();
  }
}

/** How a finished transfer is told: a line for people (stderr) and what scripts read (stdout). */
export interface TransferReport {
  summary: string;
  stdout: string;
}

/**
 * Runs one transfer command with the output its flags ask for: progress while it runs (bars,
 * lines, NDJSON or nothing), then with --json one `summary` object on stdout, else the summary
 * line on stderr (not with --quiet) and the result's name on stdout. Ctrl-C aborts it (exit 130).
 */
export async function runTransfer<R extends object>(
  flags: { json?: boolean; quiet?: boolean },
  label: string,
  work: (onEvent: (event: TransferEvent) => void, signal: AbortSignal) => Promise<R>,
  report: (result: R) => TransferReport,
): Promise<R> {
  const mode = outputMode(flags);
  const renderer = createRenderer(mode, label);
  const result = await withInterrupt((signal) => work((event) => renderer.onEvent(event), signal)).finally(
    () => renderer.finish(),
  );
  if (mode === "json") {
    process.stdout.write(`${JSON.stringify({ type: "summary", ...result })}\n`);
    return result;
  }
  const { summary, stdout } = report(result);
  if (mode !== "quiet") process.stderr.write(`${summary}\n`);
  process.stdout.write(`${stdout}\n`);
  return result;
}

/** `N blob(s) sent, X at Y MB/s, M already there, S s`: the figures every transfer reports. */
export function transferFigures(result: {
  blobsSent: number;
  bytesSent: number;
  blobsSkipped: number;
  seconds: number;
}): string {
  return (
    `${result.blobsSent} blob(s) sent, ${formatBytes(result.bytesSent)} at ${formatRate(result.bytesSent, result.seconds)}, ` +
    `${result.blobsSkipped} already there, ${result.seconds.toFixed(1)} s`
  );
}
