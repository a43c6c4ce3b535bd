/**
 * A network between the client and the local server (`ecrx serve --network PROFILE`, `--rtt`,
 * `--conn-bandwidth`, `--api-latency`), so that transfers meet what a real one meets: a round trip
 * per exchange, a bandwidth cap per TCP connection (which is why parallel connections pay), and the
 * service's processing time per API call.
 *
 * The model, per TCP connection and each way independently:
 * - bytes are serialized onto the link at `connBandwidth` bytes per second (a token bucket that may
 *   run ahead by two slices, about 10 ms of bytes), then travel `rttMs / 2` before they arrive (at
 *   most 16 MiB at once, a window that bounds memory when there is a delay and no cap);
 * - a new connection's first byte reaches the server one RTT late: the client could only have sent
 *   it after the TCP handshake (SYN, SYN-ACK). TLS handshakes and TCP slow start are not modelled;
 * - backpressure as on a real link: the server's writes complete when their bytes are on the wire,
 *   and the client's sends block once the server side holds a bounded backlog.
 * API latency is not a property of the link: it is the service's time per API call, which the
 * server spends on every call it answers (see server.ts), never on download URL GETs, which S3
 * serves.
 *
 * The shaping sits between node's TCP sockets and the HTTP server: `shapeConnections` hands the HTTP
 * server a `ShapedSocket` (a Duplex over the accepted socket) instead of the socket itself.
 */
import type { Server } from "node:net";
import { Socket } from "node:net";
import { Duplex } from "node:stream";
import { EcrxError } from "../errors.js";

export interface NetworkShape {
  /** A label for messages, e.g. the profile's name. */
  name?: string;
  /** Round-trip time in milliseconds (0..10,000); default 0. */
  rttMs?: number;
  /** Bytes per second per TCP connection, each way (0, the default, or at least 1,000): 0 is no cap. */
  connBandwidth?: number;
  /** Milliseconds (0..60,000) the server adds to every API call, not to download URLs; default 0. */
  apiLatencyMs?: number;
}

export type ResolvedNetworkShape = Required<NetworkShape>;

export interface NetworkProfile {
  rttMs: number;
  connBandwidth: number;
  apiLatencyMs: number;
  /** Who sees such a network, and why these figures. */
  about: string;
}

/**
 * The named profiles. One TCP connection to S3 or ECR typically moves tens of MB/s, whatever the
 * machine's own bandwidth (the congestion window and the far end's per-connection pace cap it),
 * which is why clients that open parallel connections go faster; the farther the client, the lower
 * the rate one connection reaches. AWS's API front ends answer in about 10 ms before the network.
 */
export const NETWORK_PROFILES: Readonly<Record<string, Readonly<NetworkProfile>>> = Object.freeze({
  "in-region": {
    rttMs: 2,
    connBandwidth: 50_000_000,
    apiLatencyMs: 10,
    about: "a client in the registry's region (EC2, EKS)",
  },
  "cross-region": {
    rttMs: 60,
    connBandwidth: 30_000_000,
    apiLatencyMs: 10,
    about: "another region, e.g. us-east-1 to us-west-2",
  },
  far: {
    rttMs: 150,
    connBandwidth: 16_000_000,
    apiLatencyMs: 10,
    about: "another continent",
  },
  loopback: { rttMs: 0, connBandwidth: 0, apiLatencyMs: 0, about: "no shaping (the default)" },
  none: { rttMs: 0, connBandwidth: 0, apiLatencyMs: 0, about: "the same as loopback" },
});

export const MAX_RTT_MS = 10_000;
export const MAX_API_LATENCY_MS = 60_000;
/** Below this a connection could not carry an HTTP request within the server's timeouts. */
export const MIN_CONN_BANDWIDTH = 1_000;

function usage(message: string, hint?: string): EcrxError {
  return new EcrxError("USAGE", message, hint === undefined ? {} : { hint });
}

/** The profile of that name; throws USAGE naming the known ones. */
export function networkProfile(name: string): ResolvedNetworkShape {
  const profile = Object.hasOwn(NETWORK_PROFILES, name) ? NETWORK_PROFILES[name] : undefined;
  if (profile === undefined) {
    throw usage(
      `unknown network profile "${name}": expected one of ${Object.keys(NETWORK_PROFILES).join(", ")}`,
    );
  }
  return {
    name,
    rttMs: profile.rttMs,
    connBandwidth: profile.connBandwidth,
    apiLatencyMs: profile.apiLatencyMs,
  };
}

/** The multipliers of rate units; `b` and `bit` are bits, `B` bytes. */
const RATE_UNITS: Readonly<Record<string, number>> = {
  B: 1,
  kB: 1e3,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  bit: 1 / 8,
  kbit: 1e3 / 8,
  Kbit: 1e3 / 8,
  Mbit: 1e6 / 8,
  Gbit: 1e9 / 8,
  b: 1 / 8,
  kb: 1e3 / 8,
  Kb: 1e3 / 8,
  Mb: 1e6 / 8,
  Gb: 1e9 / 8,
};

/**
 * A rate in bytes per second from `40MB/s`, `40MiB/s`, `320Mbit/s`, `320Mbps`, `2.5GB/s` or a bare
 * number of bytes per second; 0 means no cap. Units are case-sensitive where it matters: `MB` is
 * megabytes, `Mb` and `Mbit` megabits. `what` names the value in the error, e.g. `--conn-bandwidth`.
 */
export function parseRate(text: string, what = "--conn-bandwidth"): number {
  const match = /^(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]+?)?(?:\/s|ps)?$/.exec(text.trim());
  const unit = match?.[2] ?? "";
  const multiplier = unit === "" ? 1 : Object.hasOwn(RATE_UNITS, unit) ? RATE_UNITS[unit] : undefined;
  if (match === null || multiplier === undefined || (unit === "" && /\/s|ps$/.test(text.trim()))) {
    throw usage(
      `invalid ${what} "${text}": expected a rate like 40MB/s, 40MiB/s, 320Mbit/s or a number of bytes per second`,
    );
  }
  const rate = Math.round(Number(match[1]) * multiplier);
  checkBandwidth(rate, what, `"${text}"`);
  return rate;
}

function checkBandwidth(rate: number, what: string, shown: string): void {
  if (!Number.isFinite(rate) || rate < 0 || (rate > 0 && rate < MIN_CONN_BANDWIDTH)) {
    throw usage(
      `invalid ${what} ${shown}: expected 0 (no cap) or at least ${formatRate(MIN_CONN_BANDWIDTH)}`,
    );
  }
}

/** Milliseconds from `60` or `2.5`; `what` names the value in the error, e.g. `--rtt`. */
export function parseMilliseconds(text: string, what: string, max: number): number {
  const value = /^(\d+(\.\d+)?|\.\d+)$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (!(value <= max)) throw usage(`invalid ${what} "${text}": expected milliseconds in 0..${max}`);
  return value;
}

function checkMilliseconds(value: number, what: string, max: number): void {
  if (!Number.isFinite(value) || value < 0 || value > max) {
    throw usage(`invalid ${what} ${String(value)}: expected milliseconds in 0..${max}`);
  }
}

/**
 * A shape from a profile name and explicit values, which override the profile's; every value
 * defaults to 0 (no shaping). Throws USAGE on a bad value, naming it as `where.field`.
 */
export function resolveNetwork(
  profile: string | undefined,
  overrides: NetworkShape = {},
  where = "network",
): ResolvedNetworkShape {
  const base = profile === undefined ? undefined : networkProfile(profile);
  const adjusted = (["rttMs", "connBandwidth", "apiLatencyMs"] as const).some(
    (key) => overrides[key] !== undefined && overrides[key] !== base?.[key],
  );
  const name =
    overrides.name ?? (base === undefined ? "custom" : adjusted ? `${base.name} (adjusted)` : base.name);
  const shape = {
    name,
    rttMs: overrides.rttMs ?? base?.rttMs ?? 0,
    connBandwidth: overrides.connBandwidth ?? base?.connBandwidth ?? 0,
    apiLatencyMs: overrides.apiLatencyMs ?? base?.apiLatencyMs ?? 0,
  };
  checkMilliseconds(shape.rttMs, `${where}.rttMs`, MAX_RTT_MS);
  checkBandwidth(shape.connBandwidth, `${where}.connBandwidth`, String(shape.connBandwidth));
  checkMilliseconds(shape.apiLatencyMs, `${where}.apiLatencyMs`, MAX_API_LATENCY_MS);
  return shape;
}

/** Whether connections need shaping (API latency alone does not touch them). */
export function shapesConnections(shape: NetworkShape | undefined): boolean {
  return (shape?.rttMs ?? 0) > 0 || (shape?.connBandwidth ?? 0) > 0;
}

/** Whether the shape changes anything at all. */
export function isShaped(shape: NetworkShape | undefined): boolean {
  return shapesConnections(shape) || (shape?.apiLatencyMs ?? 0) > 0;
}

function trimNumber(value: number): string {
  return String(Number(value.toPrecision(3)));
}

/** A rate for people: `30 MB/s`, `40 MiB/s` when it is a whole number of MiB/s, `1.5 GB/s`. */
export function formatRate(bytesPerSecond: number): string {
  for (const [unit, size] of [
    ["GiB", 1024 ** 3],
    ["MiB", 1024 ** 2],
  ] as const) {
    if (bytesPerSecond >= size && bytesPerSecond % size === 0 && bytesPerSecond % 1e6 !== 0) {
      return `${bytesPerSecond / size} ${unit}/s`;
    }
  }
  for (const [unit, size] of [
    ["GB", 1e9],
    ["MB", 1e6],
    ["kB", 1e3],
  ] as const) {
    if (bytesPerSecond >= size) return `${trimNumber(bytesPerSecond / size)} ${unit}/s`;
  }
  return `${bytesPerSecond} B/s`;
}

/** `cross-region: rtt 60 ms, 30 MB/s per connection each way, API latency 10 ms`. */
export function describeNetwork(shape: NetworkShape): string {
  const rtt = shape.rttMs ?? 0;
  const rate = shape.connBandwidth ?? 0;
  const api = shape.apiLatencyMs ?? 0;
  const parts = [
    rtt > 0 ? `rtt ${rtt} ms` : "no added rtt",
    rate > 0 ? `${formatRate(rate)} per connection each way` : "no bandwidth cap",
    api > 0 ? `API latency ${api} ms` : "no API latency",
  ];
  return `${shape.name ?? "custom"}: ${isShaped(shape) ? parts.join(", ") : "no shaping"}`;
}

/** The profiles as a table, one line each, for `--help` and messages. */
export function describeProfiles(): string[] {
  return Object.entries(NETWORK_PROFILES).map(([name, p]) => {
    const figures =
      p.rttMs === 0 && p.connBandwidth === 0 && p.apiLatencyMs === 0
        ? ""
        : `rtt ${String(p.rttMs).padStart(3)} ms  ${formatRate(p.connBandwidth).padStart(8)}  API ${p.apiLatencyMs} ms  `;
    return `${name.padEnd(14)}${figures}${p.about}`;
  });
}

/** Slices of about this much link time keep the flow smooth without a timer per packet. */
const SLICE_MS = 5;
const MIN_SLICE_BYTES = 16 * 1024;
const MAX_SLICE_BYTES = 256 * 1024;
/** The server side holds at most this many bytes (or 4 slices) the client sent before pausing it. */
const INBOUND_BACKLOG_BYTES = 256 * 1024;
/**
 * At most this many bytes travel at once each way (a window): memory stays bounded when there is a
 * delay and no cap, at the price of at most 16 MiB per one-way delay (213 MB/s with 150 ms of rtt).
 */
const MAX_WIRE_BYTES = 16 * 1024 * 1024;

/** One direction of a connection: a serialization clock, then the propagation delay. */
class Link {
  /** Bytes not yet on the wire. */
  private readonly queue: Buffer[] = [];
  queuedBytes = 0;
  /** Bytes on the wire, each slice with its arrival time; null is the end of the stream. */
  private readonly wire: { bytes: Buffer | null; at: number }[] = [];
  private wireBytes = 0;
  /** Write callbacks, each waiting until `upTo` bytes have been serialized. */
  private readonly waiters: { upTo: number; callback: () => void }[] = [];
  private enqueued = 0;
  private serialized = 0;
  private ended = false;
  private endSent = false;
  /** The receiver takes no more: serialization stops (bytes on the wire still arrive). */
  held = false;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private pumping = false;
  private again = false;
  private closed = false;
  private readonly bytesPerMs: number;
  private readonly sliceBytes: number;
  /**
   * How far the clock may lag behind now: the bucket's depth, two slices, so that a timer that fires
   * up to a slice late loses no link time (with one, every late wake-up would); after an idle spell,
   * a burst of two slices.
   */
  private readonly slackMs: number;

  constructor(
    bytesPerSecond: number,
    private readonly delayMs: number,
    /** When the link can first carry bytes (a new connection's handshake). */
    private clock: number,
    private readonly deliver: (bytes: Buffer | null) => void,
    private readonly onSerialized: () => void = () => {},
  ) {
    this.bytesPerMs = bytesPerSecond > 0 ? bytesPerSecond / 1000 : Infinity;
    this.sliceBytes =
      bytesPerSecond > 0
        ? Math.min(MAX_SLICE_BYTES, Math.max(MIN_SLICE_BYTES, Math.round((bytesPerSecond * SLICE_MS) / 1000)))
        : Infinity;
    this.slackMs = bytesPerSecond > 0 ? (2 * this.sliceBytes) / this.bytesPerMs : 0;
  }

  get backlogLimit(): number {
    return Number.isFinite(this.sliceBytes)
      ? Math.max(INBOUND_BACKLOG_BYTES, 4 * this.sliceBytes)
      : INBOUND_BACKLOG_BYTES;
  }

  enqueue(chunk: Buffer, callback?: () => void): void {
    if (chunk.length > 0) {
      this.queue.push(chunk);
      this.queuedBytes += chunk.length;
      this.enqueued += chunk.length;
    }
    if (callback !== undefined) this.waiters.push({ upTo: this.enqueued, callback });
    this.pump();
  }

  end(): void {
    this.ended = true;
    this.pump();
  }

  /** Moves everything due by now: serialized slices onto the wire, arrived ones to the receiver. */
  pump(): void {
    if (this.closed) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.again = false;
        this.step(performance.now());
      } while (this.again && !this.closed);
    } finally {
      this.pumping = false;
    }
  }

  private step(now: number): void {
    let next = Infinity;
    let serializedAny = false;
    while (!this.held && this.queue.length > 0 && this.wireBytes < MAX_WIRE_BYTES) {
      const head = this.queue[0]!;
      const length = Math.min(this.sliceBytes, head.length);
      const start = Math.max(this.clock, now - this.slackMs);
      const done = start + length / this.bytesPerMs;
      if (done > now) {
        next = done;
        break;
      }
      const slice = length === head.length ? head : head.subarray(0, length);
      if (length === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(length);
      this.queuedBytes -= length;
      this.serialized += length;
      this.clock = done;
      // A slice the bucket lets through at once (done in the past) still leaves now, not earlier.
      this.wire.push({ bytes: slice, at: Math.max(done, now) + this.delayMs });
      this.wireBytes += length;
      serializedAny = true;
    }
    if (!this.held && this.ended && !this.endSent && this.queue.length === 0) {
      this.endSent = true;
      this.wire.push({ bytes: null, at: Math.max(this.clock, now) + this.delayMs });
    }
    while (this.waiters.length > 0 && this.waiters[0]!.upTo <= this.serialized) {
      this.waiters.shift()!.callback();
      if (this.closed) return;
    }
    if (serializedAny) {
      this.onSerialized();
      if (this.closed) return;
    }
    let delivered = false;
    while (this.wire.length > 0 && this.wire[0]!.at <= now) {
      const { bytes } = this.wire.shift()!;
      this.wireBytes -= bytes?.length ?? 0;
      delivered = true;
      this.deliver(bytes);
      if (this.closed) return;
    }
    // A full window that just made room: serialize again at once.
    if (delivered && this.wireBytes < MAX_WIRE_BYTES && this.queue.length > 0 && !this.held)
      this.again = true;
    if (this.wire.length > 0) next = Math.min(next, this.wire[0]!.at);
    this.schedule(next, now);
  }

  private schedule(at: number, now: number): void {
    if (at === Infinity || at >= this.timerAt) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = at;
    // Never early: a timer that fires before `at` would find nothing due and spin.
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Infinity;
        this.pump();
      },
      Math.max(0, Math.ceil(at - now)),
    );
  }

  /** Every byte not delivered yet, on the wire or still queued, in order. */
  undelivered(): Buffer[] {
    return [...this.wire.flatMap((w) => (w.bytes === null ? [] : [w.bytes])), ...this.queue];
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
    this.wire.length = 0;
    this.waiters.length = 0;
  }
}

/**
 * An accepted TCP socket seen through a shaped link, for node's HTTP server: a Duplex with the
 * members of net.Socket the server and our handlers use (timeouts, addresses, setNoDelay, ...).
 * Writes complete when their bytes are serialized; reads arrive after the link's delay. Ending,
 * closing, errors and destruction pass both ways, and every timer goes with the socket.
 */
export class ShapedSocket extends Duplex {
  private readonly inbound: Link;
  private readonly outbound: Link;
  private rawPaused = false;
  private waitingForDrain = false;
  private finalCallback: ((err?: Error | null) => void) | undefined;
  private idleMs = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private lastActive = performance.now();
  bytesRead = 0;
  bytesWritten = 0;

  constructor(
    private readonly raw: Socket,
    shape: NetworkShape,
  ) {
    super({ allowHalfOpen: true });
    const rate = shape.connBandwidth ?? 0;
    const oneWay = (shape.rttMs ?? 0) / 2;
    const opened = performance.now() + (shape.rttMs ?? 0);
    this.inbound = new Link(
      rate,
      oneWay,
      opened,
      (bytes) => this.arrive(bytes),
      () => this.resumeRawIfRoom(),
    );
    this.outbound = new Link(rate, oneWay, -Infinity, (bytes) => this.send(bytes));
    raw.on("data", (chunk: Buffer) => {
      this.inbound.enqueue(chunk);
      if (!this.rawPaused && this.inbound.queuedBytes > this.inbound.backlogLimit) {
        this.rawPaused = true;
        raw.pause();
      }
    });
    raw.on("end", () => this.inbound.end());
    raw.on("error", (err) => this.destroy(err));
    raw.on("close", () => {
      if (!this.destroyed) this.destroy();
    });
  }

  private resumeRawIfRoom(): void {
    if (this.rawPaused && this.inbound.queuedBytes <= this.inbound.backlogLimit / 2) {
      this.rawPaused = false;
      this.raw.resume();
    }
  }

  /** Bytes from the client reach the HTTP server. */
  private arrive(bytes: Buffer | null): void {
    if (bytes !== null) {
      this.bytesRead += bytes.length;
      this.touch();
    }
    if (!this.push(bytes)) this.inbound.held = true;
  }

  override _read(): void {
    this.inbound.held = false;
    this.inbound.pump();
  }

  /** Bytes from the HTTP server reach the client. */
  private send(bytes: Buffer | null): void {
    if (bytes === null) {
      const done = this.finalCallback;
      this.finalCallback = undefined;
      this.raw.end(() => done?.());
      return;
    }
    this.bytesWritten += bytes.length;
    if (!this.raw.write(bytes) && !this.waitingForDrain) {
      // The client reads slower than the link: stop serializing until it catches up.
      this.waitingForDrain = true;
      this.outbound.held = true;
      this.raw.once("drain", () => {
        this.waitingForDrain = false;
        this.outbound.held = false;
        this.outbound.pump();
      });
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.touch();
    this.outbound.enqueue(chunk, callback);
  }

  override _writev(
    chunks: { chunk: Buffer; encoding: BufferEncoding }[],
    callback: (err?: Error | null) => void,
  ): void {
    this.touch();
    chunks.forEach(({ chunk }, i) =>
      this.outbound.enqueue(chunk, i === chunks.length - 1 ? callback : undefined),
    );
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.finalCallback = callback;
    this.outbound.end();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    // What the server wrote before destroying the socket would still go out on a real one (close()
    // sends what the kernel holds): an answer written just before, e.g. node's 400 to bytes that are
    // not HTTP, or a transfer cut short on purpose, reaches the client; the pacing is forgone.
    const unsent = this.raw.destroyed ? [] : this.outbound.undelivered();
    this.inbound.close();
    this.outbound.close();
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    for (const bytes of unsent) this.raw.write(bytes);
    this.raw.destroy();
    callback(err);
  }

  /** As net.Socket's: ends, then destroys once the last byte is out. */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once("finish", () => this.destroy());
  }

  /** As net.Socket's: 'timeout' after `ms` without traffic either way; 0 disables it. */
  setTimeout(ms: number, callback?: () => void): this {
    this.idleMs = ms;
    if (callback !== undefined) {
      if (ms === 0) this.off("timeout", callback);
      else this.once("timeout", callback);
    }
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.touch();
    return this;
  }

  get timeout(): number | undefined {
    return this.idleMs === 0 ? undefined : this.idleMs;
  }

  private touch(): void {
    this.lastActive = performance.now();
    if (this.idleMs > 0 && this.idleTimer === undefined && !this.destroyed) this.armIdle(this.idleMs);
  }

  private armIdle(ms: number): void {
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.idleMs === 0 || this.destroyed) return;
      const idle = performance.now() - this.lastActive;
      if (idle >= this.idleMs) this.emit("timeout");
      else this.armIdle(this.idleMs - idle);
    }, Math.ceil(ms));
    this.idleTimer.unref();
  }

  setNoDelay(noDelay?: boolean): this {
    this.raw.setNoDelay(noDelay);
    return this;
  }

  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    this.raw.setKeepAlive(enable, initialDelay);
    return this;
  }

  ref(): this {
    this.raw.ref();
    return this;
  }

  unref(): this {
    this.raw.unref();
    return this;
  }

  address(): ReturnType<Socket["address"]> {
    return this.raw.address();
  }

  get remoteAddress(): string | undefined {
    return this.raw.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.raw.remotePort;
  }

  get remoteFamily(): string | undefined {
    return this.raw.remoteFamily;
  }

  get localAddress(): string | undefined {
    return this.raw.localAddress;
  }

  get localPort(): number | undefined {
    return this.raw.localPort;
  }
}

/**
 * Makes `server` (node's HTTP server, before it listens) see every accepted connection through a
 * shaped link. The server still listens itself, so that node keeps tracking its connections
 * (headersTimeout, requestTimeout, closeAllConnections and closeIdleConnections work from the list
 * it starts on 'listening') and close() waits for the TCP sockets; only its 'connection' handlers
 * are given the ShapedSocket instead of the raw one (as `server.emit("connection", duplex)` would).
 */
export function shapeConnections(server: Server, shape: NetworkShape): void {
  const handlers = server.listeners("connection") as ((socket: Duplex) => void)[];
  server.removeAllListeners("connection");
  server.on("connection", (socket: Duplex) => {
    const shaped = socket instanceof Socket ? new ShapedSocket(socket, shape) : socket;
    for (const handler of handlers) handler.call(server, shaped);
  });
}
