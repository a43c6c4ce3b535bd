/**
 * Registry authorization tokens (GetAuthorizationToken): `base64("AWS:" + password)`, where the
 * password is `<service>.<account>.<expiresAt>.<hmac>` signed with the store's persisted secret, so
 * the registry API can check a token without keeping a list, even after a restart.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { ServiceName } from "./api.js";
import type { Store } from "./store.js";

/** ECR's tokens last 12 hours. */
export const AUTHORIZATION_TOKEN_LIFETIME_SECONDS = 12 * 60 * 60;

export interface AuthorizationClaims {
  service: ServiceName;
  accountId: string;
  /** Epoch seconds. */
  expiresAt: number;
}

function sign(store: Store, payload: string): string {
  return createHmac("sha256", store.authSecret).update(payload).digest("base64url");
}

export function createAuthorizationToken(store: Store, claims: AuthorizationClaims): string {
  const payload = `${claims.service}.${claims.accountId}.${claims.expiresAt}`;
  return Buffer.from(`AWS:${payload}.${sign(store, payload)}`).toString("base64");
}

/** The claims of a genuine, unexpired token (as sent after `Basic `), else undefined. */
export function readAuthorizationToken(
  store: Store,
  token: string,
  now: Date,
): AuthorizationClaims | undefined {
  const decoded = Buffer.from(token, "base64").toString("utf8");
  const match = /^AWS:(ecr|ecr-public)\.(\d{12})\.(\d+)\.([A-Za-z0-9_-]+)$/.exec(decoded);
  if (match === null) return undefined;
  const [, service, accountId, expiresAt, signature] = match as unknown as [
    string,
    ServiceName,
    string,
    string,
    string,
  ];
  const expected = Buffer.from(sign(store, `${service}.${accountId}.${expiresAt}`));
  const given = Buffer.from(signature);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  if (Number(expiresAt) * 1000 <= now.getTime()) return undefined;
  return { service, accountId, expiresAt: Number(expiresAt) };
}

export function verifyAuthorizationToken(store: Store, token: string, now: Date): boolean {
  return readAuthorizationToken(store, token, now) !== undefined;
}
