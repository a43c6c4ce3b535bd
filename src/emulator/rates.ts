/**
 * ECR's default per-operation request rates (ecr-spec.md section 2), enforced as token buckets so
 * that a client which would be throttled by AWS is throttled here too. AWS applies them per account
 * and region; the emulator serves one account, so one bucket per service and operation.
 */
import type { ServiceName } from "./api.js";

export type RatesMode = "aws" | "off";

/** Requests per second; operations not listed have no documented default rate and are not limited. */
export const DEFAULT_RATES: Readonly<Record<ServiceName, Readonly<Record<string, number>>>> = {
  ecr: {
    UploadLayerPart: 500,
    InitiateLayerUpload: 100,
    CompleteLayerUpload: 100,
    PutImage: 10,
    BatchCheckLayerAvailability: 1000,
    BatchGetImage: 2000,
    GetDownloadUrlForLayer: 3000,
    GetAuthorizationToken: 500,
  },
  "ecr-public": {
    UploadLayerPart: 260,
    InitiateLayerUpload: 10,
    CompleteLayerUpload: 10,
    PutImage: 10,
    BatchCheckLayerAvailability: 200,
    GetAuthorizationToken: 200,
  },
};

/** A token bucket refilled continuously at `ratePerSecond`, holding at most `capacity` tokens. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  /** `clock` returns milliseconds from a monotonic origin. */
  constructor(
    readonly ratePerSecond: number,
    readonly capacity: number,
    private readonly clock: () => number,
  ) {
    this.tokens = capacity;
    this.last = clock();
  }

  /** Takes one token if there is one. */
  tryTake(): boolean {
    const now = this.clock();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.ratePerSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export class RateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  /** Real time, not the emulator's injectable clock: rates are about how fast requests arrive. */
  constructor(
    readonly mode: RatesMode,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  /** Whether a request to `operation` of `service` may go on now (false: answer ThrottlingException). */
  allow(service: ServiceName, operation: string): boolean {
    if (this.mode === "off") return true;
    const rates = DEFAULT_RATES[service];
    // hasOwn: an operation named "constructor" must not find Object.prototype's.
    if (!Object.hasOwn(rates, operation)) return true;
    const rate = rates[operation] ?? 0;
    const key = `${service}:${operation}`;
    let bucket = this.buckets.get(key);
    if (!bucket) {
      // Burst = one second's worth of requests.
      bucket = new TokenBucket(rate, rate, this.clock);
      this.buckets.set(key, bucket);
    }
    return bucket.tryTake();
  }
}
