/**
 * Fault injection for the emulator (`ecrx serve --faults SPEC --fault-seed N`).
 *
 * SPEC is a comma-separated list of `TARGET:KIND=VALUE`:
 * - TARGET: an operation name (`UploadLayerPart`), `download` (the presigned download URLs),
 *   `registry` (the registry v2 API) or `*` (every target). A rule for a named target takes
 *   precedence over a `*` rule of the same kind.
 * - KIND, with a probability in 0..1:
 *   - `throttle`: answer ThrottlingException (download URLs: S3's 503 SlowDown);
 *   - `error`: answer 500 ServerException (download URLs: S3's 500 InternalError);
 *   - `reset`: destroy the socket without answering, the request not applied;
 *   - `lost`: apply the operation, then destroy the socket: the client never hears that it
 *     succeeded. A download has nothing to apply: there `lost` sends the headers and part of the
 *     body, then destroys the socket (a transfer cut short).
 * - KIND `latency`, with a value in milliseconds: a delay added before the request is handled.
 *
 * The draws come from a seeded PRNG, so a run with the same seed and the same sequence of requests
 * meets the same faults (concurrent clients reorder requests, and with them the draws).
 */
import { EcrxError } from "../errors.js";

export type FaultKind = "throttle" | "error" | "reset" | "lost" | "latency";

export interface FaultRule {
  target: string;
  kind: FaultKind;
  /** A probability in 0..1, or milliseconds for `latency`. */
  value: number;
}

/** What to do to one request. At most one of throttle/error/reset/lost is set. */
export interface FaultDecision {
  latencyMs: number;
  /** Refuse before applying anything. */
  refuse?: "throttle" | "error" | "reset";
  /** Apply, then drop the connection instead of answering. */
  lost: boolean;
}

export const NO_FAULT: FaultDecision = Object.freeze({ latencyMs: 0, lost: false });

const PROBABILITY_KINDS = ["throttle", "error", "reset", "lost"] as const;
const KINDS: readonly FaultKind[] = [...PROBABILITY_KINDS, "latency"];
const SPECIAL_TARGETS = new Set(["*", "download", "registry"]);
const OPERATION_NAME = /^[A-Z][A-Za-z0-9]*$/;
/** A latency beyond this would stall clients past every sensible timeout. */
const MAX_LATENCY_MS = 60_000;

function specError(spec: string, detail: string): EcrxError {
  return new EcrxError("USAGE", `invalid fault spec "${spec}": ${detail}`, {
    hint: 'write TARGET:KIND=VALUE[,...], e.g. "UploadLayerPart:lost=0.05,PutImage:throttle=0.3,*:latency=20"',
  });
}

/** Parses a fault spec; an empty spec means no faults. Throws EcrxError("USAGE") on a bad spec. */
export function parseFaultSpec(spec: string): FaultRule[] {
  const rules: FaultRule[] = [];
  const seen = new Set<string>();
  for (const rawItem of spec.split(",")) {
    const item = rawItem.trim();
    if (item === "") {
      if (spec.trim() === "") continue;
      throw specError(spec, "empty item between commas");
    }
    const match = /^([^:=\s]+):([a-z]+)=(\S+)$/.exec(item);
    if (!match) throw specError(spec, `"${item}" is not TARGET:KIND=VALUE`);
    const [, target = "", kindText = "", valueText = ""] = match;
    if (!SPECIAL_TARGETS.has(target) && !OPERATION_NAME.test(target)) {
      throw specError(spec, `"${target}" is not an operation name, "download", "registry" or "*"`);
    }
    if (!(KINDS as readonly string[]).includes(kindText)) {
      throw specError(spec, `unknown kind "${kindText}" (expected ${KINDS.join(", ")})`);
    }
    const kind = kindText as FaultKind;
    // Number("") and Number(" ") are 0: require digits.
    const value = /^\d+(\.\d+)?$|^\.\d+$/.test(valueText) ? Number(valueText) : Number.NaN;
    if (kind === "latency") {
      if (!Number.isFinite(value) || value > MAX_LATENCY_MS) {
        throw specError(spec, `latency "${valueText}" must be milliseconds in 0..${MAX_LATENCY_MS}`);
      }
    } else if (!Number.isFinite(value) || value > 1) {
      throw specError(spec, `probability "${valueText}" of ${kind} must be in 0..1`);
    }
    const key = `${target}:${kind}`;
    if (seen.has(key)) throw specError(spec, `${key} is given twice`);
    seen.add(key);
    rules.push({ target, kind, value });
  }
  return rules;
}

/** mulberry32: small, fast and good enough to spread fault draws; not for anything secret. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class FaultInjector {
  private readonly random: () => number;

  constructor(
    readonly rules: readonly FaultRule[],
    seed: number,
  ) {
    this.random = seededRandom(seed);
  }

  /** Operation names the rules name, for the caller to check against the operations it serves. */
  namedOperations(): string[] {
    return [...new Set(this.rules.map((r) => r.target).filter((t) => !SPECIAL_TARGETS.has(t)))];
  }

  /** Draws the faults of one request to `target` (an operation name, `download` or `registry`). */
  decide(target: string): FaultDecision {
    if (this.rules.length === 0) return NO_FAULT;
    const latencyMs = this.valueFor(target, "latency") ?? 0;
    for (const kind of PROBABILITY_KINDS) {
      const probability = this.valueFor(target, kind);
      if (probability === undefined || probability === 0) continue;
      if (this.random() < probability) {
        return kind === "lost" ? { latencyMs, lost: true } : { latencyMs, refuse: kind, lost: false };
      }
    }
    return latencyMs === 0 ? NO_FAULT : { latencyMs, lost: false };
  }

  private valueFor(target: string, kind: FaultKind): number | undefined {
    let wildcard: number | undefined;
    for (const rule of this.rules) {
      if (rule.kind !== kind) continue;
      if (rule.target === target) return rule.value;
      if (rule.target === "*") wildcard = rule.value;
    }
    return wildcard;
  }
}
