import type { RetryErrorInfo, RetryStrategyV2, RetryToken } from "@smithy/types";

/**
 * The SDK-level retry policy of ecrx: exponential backoff with full jitter for throttling,
 * transient (socket) and server errors, honouring Retry-After.
 *
 * Why not the SDK's StandardRetryStrategy: its client-wide retry quota (500 tokens, 5 per retry)
 * runs dry during a push that is throttled for a while (a 200-layer image against PutImage's and
 * InitiateLayerUpload's default rates), and then it stops retrying anything. ECR throttling is
 * normal operation, not an outage, so attempts are bounded per request only.
 */
export interface RetryPolicyOptions {
  /** Attempts per request, the first included. Default 10. */
  maxAttempts?: number;
  /** Base delay for transient and server errors. Default 100 ms. */
  baseDelayMs?: number;
  /** Base delay for throttling. Default 500 ms. */
  throttlingBaseDelayMs?: number;
  /** Upper bound of one delay. Default 20 s. */
  maxDelayMs?: number;
  /** Told of every retry, for counters and `--debug`. */
  onRetry?: (info: { errorType: RetryErrorInfo["errorType"]; errorName: string; attempt: number }) => void;
  /** Injected for tests. */
  random?: () => number;
}

class AttemptToken implements RetryToken {
  constructor(private readonly retries: number) {}
  getRetryCount(): number {
    return this.retries;
  }
  /** The delay has been waited already, inside refreshRetryTokenForRetry. */
  getRetryDelay(): number {
    return 0;
  }
}

export function fullJitterDelay(
  attempt: number,
  baseMs: number,
  maxMs: number,
  random: () => number,
): number {
  return Math.floor(random() * Math.min(maxMs, baseMs * 2 ** attempt));
}

export class FullJitterRetryStrategy implements RetryStrategyV2 {
  readonly mode = "standard";
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly throttlingBaseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly random: () => number;

  constructor(private readonly options: RetryPolicyOptions = {}) {
    this.maxAttempts = options.maxAttempts ?? 10;
    this.baseDelayMs = options.baseDelayMs ?? 100;
    this.throttlingBaseDelayMs = options.throttlingBaseDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 20_000;
    this.random = options.random ?? Math.random;
  }

  async acquireInitialRetryToken(): Promise<RetryToken> {
    return new AttemptToken(0);
  }

  async refreshRetryTokenForRetry(token: RetryToken, info: RetryErrorInfo): Promise<RetryToken> {
    const retries = token.getRetryCount();
    if (info.errorType === "CLIENT_ERROR" || retries + 1 >= this.maxAttempts) {
      throw new Error("No retry token available");
    }
    const base = info.errorType === "THROTTLING" ? this.throttlingBaseDelayMs : this.baseDelayMs;
    let delay = fullJitterDelay(retries, base, this.maxDelayMs, this.random);
    if (info.retryAfterHint instanceof Date) {
      delay = Math.max(delay, Math.min(info.retryAfterHint.getTime() - Date.now(), this.maxDelayMs));
    }
    this.options.onRetry?.({
      errorType: info.errorType,
      errorName: info.error?.name ?? "Error",
      attempt: retries + 1,
    });
    await new Promise((resolve) => setTimeout(resolve, delay));
    return new AttemptToken(retries + 1);
  }

  recordSuccess(): void {}
}
