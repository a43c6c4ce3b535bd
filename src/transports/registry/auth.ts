/**
 * The `Www-Authenticate` challenge flow of registries (distribution's token auth spec, RFC 7235):
 * Basic credentials sent as they are, or a bearer token fetched from the challenge's `realm` for
 * the `service` and our `scope`s, anonymously, with Basic credentials, or with an OAuth2 refresh
 * token (docker's `identitytoken`). Tokens are refreshed ahead of their expiry, so a long copy
 * never sends one that has lapsed; a 401 drops the token and asks the credentials anew once.
 */
import { EcrxError } from "../../errors.js";

/** Credentials as ecrx uses them; `identity` is an OAuth2 refresh token (docker's `identitytoken`). */
export type Credentials =
  | { kind: "basic"; username: string; password: string }
  | { kind: "bearer"; token: string }
  | { kind: "identity"; token: string };

/** Where credentials come from (options, docker config, ECR's GetAuthorizationToken). */
export interface CredentialSource {
  /** The credentials, or undefined for anonymous access; `fresh` after the registry refused them. */
  get(fresh: boolean): Promise<Credentials | undefined>;
  close?(): void;
}

export interface Challenge {
  /** Lowercase: `basic`, `bearer`, ... */
  scheme: string;
  /** Parameter names lowercase. */
  params: Record<string, string>;
}

const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+/y;
const UNQUOTED = /[^,\s]*/y;

/**
 * Parses a `Www-Authenticate` value (or several): `Bearer realm="https://a/token",service="x",
 * scope="repository:r:pull"`, `Basic realm="r"`, several challenges separated by commas.
 */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  if (Array.isArray(header)) return header.flatMap((h) => parseChallenges(h));
  const challenges: Challenge[] = [];
  let i = 0;
  const skip = (chars: RegExp) => {
    while (i < header.length && chars.test(header[i]!)) i++;
  };
  const token = (): string | undefined => {
    TOKEN.lastIndex = i;
    const match = TOKEN.exec(header);
    if (!match) return undefined;
    i = TOKEN.lastIndex;
    return match[0];
  };
  const value = (): string => {
    if (header[i] !== '"') {
      // Leniently up to the next comma or space: servers send unquoted URLs, which are no tokens.
      UNQUOTED.lastIndex = i;
      const match = UNQUOTED.exec(header)!;
      i = UNQUOTED.lastIndex;
      return match[0];
    }
    let out = "";
    for (i++; i < header.length && header[i] !== '"'; i++) {
      if (header[i] === "\\" && i + 1 < header.length) i++;
      out += header[i];
    }
    i++;
    return out;
  };
  let current: Challenge | undefined;
  while (i < header.length) {
    skip(/[\s,]/);
    const name = token();
    if (name === undefined) {
      // Not a token: skip the character, so that junk cannot stall the parse.
      i++;
      continue;
    }
    skip(/[ \t]/);
    if (header[i] === "=" && current !== undefined) {
      i++;
      skip(/[ \t]/);
      current.params[name.toLowerCase()] = value();
    } else {
      current = { scheme: name.toLowerCase(), params: {} };
      challenges.push(current);
    }
  }
  return challenges;
}

/** Sends a request to a token service on behalf of the authenticator (transport rules applied there). */
export type TokenFetch = (
  url: URL,
  init: { method: "GET" | "POST"; headers: Record<string, string>; body?: string },
) => Promise<{ status: number; body: string }>;

export interface AuthenticatorOptions {
  credentials: CredentialSource;
  /** e.g. `repository:library/alpine:pull,push`. */
  scopes: string[];
  /** The registry host, for messages. */
  host: string;
  fetchToken: TokenFetch;
  /** Milliseconds since the epoch; injected in tests. */
  now?: () => number;
}

interface Token {
  value: string;
  /** When to fetch a new one: ahead of the expiry. */
  refreshAt: number;
}

/** The token spec's default lifetime when the service names none. */
const DEFAULT_TOKEN_SECONDS = 60;
/** Refresh this long before a token expires (at most a quarter of its lifetime). */
const REFRESH_MARGIN_MS = 60_000;

/** Authorization for one repository's requests to one registry. */
export class Authenticator {
  private challenge: Challenge | undefined;
  private token: Token | undefined;
  private pending: Promise<Token> | undefined;
  private fresh = false;
  private readonly secrets = new Set<string>();
  private readonly now: () => number;

  constructor(private readonly options: AuthenticatorOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Records the challenges of a 401 (or of the ping): Bearer is preferred over Basic. */
  setChallenges(header: string | string[] | undefined): void {
    const all = parseChallenges(header);
    this.challenge =
      all.find((c) => c.scheme === "bearer" && c.params.realm !== undefined) ??
      all.find((c) => c.scheme === "basic") ??
      this.challenge;
  }

  /** Whether the registry asked for authentication at all. */
  get challenged(): boolean {
    return this.challenge !== undefined;
  }

  /**
   * After a 401: remember its challenge, drop the token, and ask the credentials anew for the next
   * request. The caller retries once.
   */
  refused(header: string | string[] | undefined): void {
    this.setChallenges(header);
    this.token = undefined;
    this.fresh = true;
  }

  /** The `Authorization` header for the next request, or undefined. */
  async authorization(): Promise<string | undefined> {
    const challenge = this.challenge;
    if (challenge === undefined) return undefined;
    if (challenge.scheme === "bearer") {
      const creds = await this.credentials();
      if (creds?.kind === "bearer") return `Bearer ${creds.token}`;
      return `Bearer ${(await this.bearer(challenge, creds)).value}`;
    }
    const creds = await this.credentials();
    if (creds?.kind === "basic") return basicHeader(creds.username, creds.password);
    if (creds?.kind === "bearer") return `Bearer ${creds.token}`;
    return undefined;
  }

  /** `text` with every secret this authenticator has seen replaced. */
  redact(text: string): string {
    let out = text;
    for (const secret of this.secrets) if (secret.length >= 4) out = out.split(secret).join("***");
    return out;
  }

  private async credentials(): Promise<Credentials | undefined> {
    const fresh = this.fresh;
    this.fresh = false;
    const creds = await this.options.credentials.get(fresh);
    if (creds?.kind === "basic") {
      this.secrets.add(creds.password);
      this.secrets.add(Buffer.from(`${creds.username}:${creds.password}`).toString("base64"));
    } else if (creds !== undefined) {
      this.secrets.add(creds.token);
    }
    return creds;
  }

  private async bearer(challenge: Challenge, creds: Credentials | undefined): Promise<Token> {
    if (this.token !== undefined && this.now() < this.token.refreshAt) return this.token;
    // Requests in flight together share one token request.
    this.pending ??= this.fetchToken(challenge, creds).finally(() => {
      this.pending = undefined;
    });
    this.token = await this.pending;
    return this.token;
  }

  private async fetchToken(challenge: Challenge, creds: Credentials | undefined): Promise<Token> {
    const realm = challenge.params.realm!;
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new EcrxError(
        "AUTH",
        `${this.options.host} names an invalid token service ${JSON.stringify(realm)}`,
      );
    }
    const service = challenge.params.service;
    const started = this.now();
    let answer: { status: number; body: string };
    if (creds?.kind === "identity") {
      const form = new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: creds.token,
        client_id: "ecrx",
        ...(service === undefined ? {} : { service }),
        ...(this.options.scopes.length ? { scope: this.options.scopes.join(" ") } : {}),
      });
      answer = await this.options.fetchToken(url, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: form.toString(),
      });
    } else {
      if (service !== undefined) url.searchParams.set("service", service);
      for (const scope of this.options.scopes) url.searchParams.append("scope", scope);
      answer = await this.options.fetchToken(url, {
        method: "GET",
        headers:
          creds?.kind === "basic" ? { authorization: basicHeader(creds.username, creds.password) } : {},
      });
    }
    const where = `the token service of ${this.options.host} (${url.host})`;
    if (answer.status === 401 || answer.status === 403) {
      throw new EcrxError(
        "AUTH",
        `${where} refused ${creds === undefined ? "anonymous access" : "the credentials"} (HTTP ${answer.status})`,
        {
          hint: `check the credentials for ${this.options.host} (--src-creds / --dest-creds, or docker login and ~/.docker/config.json)`,
        },
      );
    }
    if (answer.status !== 200) {
      throw new EcrxError(
        answer.status === 429 || answer.status >= 500 ? "NETWORK" : "AUTH",
        `${where} answered HTTP ${answer.status}`,
      );
    }
    const token = readTokenResponse(answer.body, started);
    if (token === undefined) throw new EcrxError("AUTH", `${where} answered without a token`);
    this.secrets.add(token.value);
    return token;
  }
}

/**
 * Reads `{token | access_token, expires_in?, issued_at?}`. The expiry counts from `issued_at` when
 * it is plausible on our clock, else from when we asked: a server clock ahead or far behind ours
 * must not make a token look fresh (or stale) for longer than it is.
 */
export function readTokenResponse(body: string, askedAt: number): Token | undefined {
  let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
  try {
    doc = JSON.parse(body) as typeof doc;
  } catch {
    return undefined;
  }
  const value =
    typeof doc.token === "string" && doc.token !== ""
      ? doc.token
      : typeof doc.access_token === "string" && doc.access_token !== ""
        ? doc.access_token
        : undefined;
  if (value === undefined) return undefined;
  const seconds =
    typeof doc.expires_in === "number" && doc.expires_in > 0 ? doc.expires_in : DEFAULT_TOKEN_SECONDS;
  const lifetime = seconds * 1000;
  const issued = typeof doc.issued_at === "string" ? Date.parse(doc.issued_at) : Number.NaN;
  const base = Number.isFinite(issued) && issued <= askedAt && askedAt - issued < lifetime ? issued : askedAt;
  return { value, refreshAt: base + lifetime - Math.min(REFRESH_MARGIN_MS, lifetime / 4) };
}

function basicHeader(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
}
