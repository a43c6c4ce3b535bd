import { describe, expect, it } from "vitest";
import {
  Authenticator,
  parseChallenges,
  readTokenResponse,
  type CredentialSource,
  type Credentials,
  type TokenFetch,
} from "../../src/transports/registry/auth.js";
import { EcrTokenSource } from "../../src/transports/registry/credentials.js";
import { expectEcrxError } from "../helpers/expect-error.js";

describe("parseChallenges", () => {
  it("reads a bearer challenge with quoted parameters holding commas and colons", () => {
    expect(
      parseChallenges(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"',
      ),
    ).toEqual([
      {
        scheme: "bearer",
        params: {
          realm: "https://auth.example.com/token",
          service: "registry.example.com",
          scope: "repository:a/b:pull,push",
        },
      },
    ]);
  });

  it("reads several challenges, unquoted values, escapes and odd spacing", () => {
    expect(parseChallenges('Basic realm="ECR \\"x\\"" , Bearer realm=https://t/ , service = s')).toEqual([
      { scheme: "basic", params: { realm: 'ECR "x"' } },
      { scheme: "bearer", params: { realm: "https://t/", service: "s" } },
    ]);
    expect(parseChallenges(["Basic realm=a", "Bearer realm=b"]).map((c) => c.scheme)).toEqual([
      "basic",
      "bearer",
    ]);
  });

  it("survives junk and empty headers", () => {
    expect(parseChallenges(undefined)).toEqual([]);
    expect(parseChallenges("")).toEqual([]);
    expect(parseChallenges('"" ,,, @@ Basic')).toEqual([{ scheme: "basic", params: {} }]);
  });
});

describe("readTokenResponse", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");

  it("takes token or access_token; 60 s when expires_in is missing", () => {
    expect(readTokenResponse('{"token":"t"}', now)).toEqual({ value: "t", refreshAt: now + 60_000 - 15_000 });
    expect(readTokenResponse('{"access_token":"a","expires_in":300}', now)?.value).toBe("a");
    expect(readTokenResponse('{"nothing":1}', now)).toBeUndefined();
    expect(readTokenResponse("<html>", now)).toBeUndefined();
  });

  it("counts from issued_at when plausible, from the request otherwise", () => {
    const issued = new Date(now - 100_000).toISOString();
    expect(readTokenResponse(`{"token":"t","expires_in":3600,"issued_at":"${issued}"}`, now)?.refreshAt).toBe(
      now - 100_000 + 3_600_000 - 60_000,
    );
    const future = new Date(now + 3_600_000).toISOString();
    expect(readTokenResponse(`{"token":"t","expires_in":300,"issued_at":"${future}"}`, now)?.refreshAt).toBe(
      now + 300_000 - 60_000,
    );
    const ancient = new Date(now - 86_400_000).toISOString();
    expect(readTokenResponse(`{"token":"t","expires_in":300,"issued_at":"${ancient}"}`, now)?.refreshAt).toBe(
      now + 300_000 - 60_000,
    );
  });
});

function source(list: (Credentials | undefined)[]): CredentialSource & { calls: boolean[] } {
  const calls: boolean[] = [];
  return {
    calls,
    get: async (fresh) => {
      calls.push(fresh);
      return list[Math.min(calls.length - 1, list.length - 1)];
    },
  };
}

function tokenService(answers: { status?: number; body: string }[]) {
  const requests: { url: URL; method: string; headers: Record<string, string>; body?: string }[] = [];
  const fetchToken: TokenFetch = async (url, init) => {
    requests.push({ url, ...init });
    const answer = answers[Math.min(requests.length - 1, answers.length - 1)]!;
    return { status: answer.status ?? 200, body: answer.body };
  };
  return { requests, fetchToken };
}

const BEARER = 'Bearer realm="https://auth.test/token",service="reg.test"';

describe("Authenticator", () => {
  it("asks nothing of a registry that never challenged", async () => {
    const auth = new Authenticator({
      credentials: source([{ kind: "basic", username: "u", password: "p" }]),
      scopes: [],
      host: "reg.test",
      fetchToken: tokenService([]).fetchToken,
    });
    expect(await auth.authorization()).toBeUndefined();
  });

  it("sends Basic credentials to a Basic challenge", async () => {
    const auth = new Authenticator({
      credentials: source([{ kind: "basic", username: "AWS", password: "pw" }]),
      scopes: [],
      host: "reg.test",
      fetchToken: tokenService([]).fetchToken,
    });
    auth.setChallenges('Basic realm="https://reg.test/",service="ecr.amazonaws.com"');
    expect(await auth.authorization()).toBe(`Basic ${Buffer.from("AWS:pw").toString("base64")}`);
  });

  it("fetches an anonymous token for the scopes, shares it, and refreshes it before it expires", async () => {
    let now = 1_000_000;
    const service = tokenService([
      { body: '{"token":"first","expires_in":300}' },
      { body: '{"token":"second","expires_in":300}' },
    ]);
    const auth = new Authenticator({
      credentials: source([undefined]),
      scopes: ["repository:a/b:pull,push", "repository:c:pull"],
      host: "reg.test",
      fetchToken: service.fetchToken,
      now: () => now,
    });
    auth.setChallenges(BEARER);
    const [one, two] = await Promise.all([auth.authorization(), auth.authorization()]);
    expect([one, two]).toEqual(["Bearer first", "Bearer first"]);
    expect(service.requests).toHaveLength(1);
    const url = service.requests[0]!.url;
    expect(url.origin + url.pathname).toBe("https://auth.test/token");
    expect(url.searchParams.get("service")).toBe("reg.test");
    expect(url.searchParams.getAll("scope")).toEqual(["repository:a/b:pull,push", "repository:c:pull"]);
    expect(service.requests[0]!.headers.authorization).toBeUndefined();

    now += 200_000;
    expect(await auth.authorization()).toBe("Bearer first");
    // One minute before expiry: a new token, so a long copy never sends a lapsed one.
    now += 41_000;
    expect(await auth.authorization()).toBe("Bearer second");
    expect(service.requests).toHaveLength(2);
  });

  it("sends Basic credentials to the token service and asks for them anew after a 401", async () => {
    const creds = source([
      { kind: "basic", username: "u", password: "old-password" },
      { kind: "basic", username: "u", password: "new-password" },
    ]);
    const service = tokenService([{ body: '{"token":"a"}' }, { body: '{"token":"b"}' }]);
    const auth = new Authenticator({
      credentials: creds,
      scopes: [],
      host: "reg.test",
      fetchToken: service.fetchToken,
    });
    auth.setChallenges(BEARER);
    expect(await auth.authorization()).toBe("Bearer a");
    auth.refused(`${BEARER},error="invalid_token"`);
    expect(await auth.authorization()).toBe("Bearer b");
    expect(creds.calls).toEqual([false, true]);
    expect(service.requests.map((r) => r.headers.authorization)).toEqual([
      `Basic ${Buffer.from("u:old-password").toString("base64")}`,
      `Basic ${Buffer.from("u:new-password").toString("base64")}`,
    ]);
  });

  it("trades an identity token through the OAuth2 refresh_token grant", async () => {
    const service = tokenService([{ body: '{"access_token":"acc","expires_in":900}' }]);
    const auth = new Authenticator({
      credentials: source([{ kind: "identity", token: "refresh-me" }]),
      scopes: ["repository:a:pull"],
      host: "reg.test",
      fetchToken: service.fetchToken,
    });
    auth.setChallenges(BEARER);
    expect(await auth.authorization()).toBe("Bearer acc");
    const request = service.requests[0]!;
    expect(request.method).toBe("POST");
    const form = new URLSearchParams(request.body);
    expect(Object.fromEntries(form)).toEqual({
      grant_type: "refresh_token",
      refresh_token: "refresh-me",
      client_id: "ecrx",
      service: "reg.test",
      scope: "repository:a:pull",
    });
  });

  it("sends a given bearer token as it is", async () => {
    const service = tokenService([]);
    const auth = new Authenticator({
      credentials: source([{ kind: "bearer", token: "given" }]),
      scopes: [],
      host: "reg.test",
      fetchToken: service.fetchToken,
    });
    auth.setChallenges(BEARER);
    expect(await auth.authorization()).toBe("Bearer given");
    expect(service.requests).toHaveLength(0);
  });

  it("reports a refusing or broken token service as AUTH without the secrets", async () => {
    const refusing = new Authenticator({
      credentials: source([{ kind: "basic", username: "u", password: "hunter22" }]),
      scopes: [],
      host: "reg.test",
      fetchToken: tokenService([{ status: 401, body: "no" }]).fetchToken,
    });
    refusing.setChallenges(BEARER);
    await expectEcrxError(
      refusing.authorization(),
      "AUTH",
      /token service of reg.test \(auth.test\) refused the credentials/,
    );
    expect(refusing.redact("x hunter22 y")).toBe("x *** y");

    const broken = new Authenticator({
      credentials: source([undefined]),
      scopes: [],
      host: "reg.test",
      fetchToken: tokenService([{ body: "<html>" }]).fetchToken,
    });
    broken.setChallenges(BEARER);
    await expectEcrxError(broken.authorization(), "AUTH", /answered without a token/);
  });
});

describe("EcrTokenSource", () => {
  it("fetches ECR's password again before its 12 hours run out", async () => {
    let now = Date.parse("2026-01-01T00:00:00Z");
    let fetched = 0;
    const tokens = new EcrTokenSource(
      async () => {
        fetched++;
        return {
          token: Buffer.from(`AWS:password-${fetched}`).toString("base64"),
          expiresAt: new Date(now + 12 * 3600_000),
        };
      },
      () => now,
    );
    expect(await tokens.get(false)).toEqual({ kind: "basic", username: "AWS", password: "password-1" });
    now += 11 * 3600_000;
    expect(await tokens.get(false)).toMatchObject({ password: "password-1" });
    now += 50 * 60_000;
    expect(await tokens.get(false)).toMatchObject({ password: "password-2" });
    // A refusal asks for a new one at once.
    expect(await tokens.get(true)).toMatchObject({ password: "password-3" });
  });

  it("refuses a token that is not base64 of user:password", async () => {
    const tokens = new EcrTokenSource(async () => ({ token: "bm9jb2xvbg==", expiresAt: new Date() }));
    await expectEcrxError(tokens.get(false), "AUTH", /not base64 of user:password/);
  });
});
