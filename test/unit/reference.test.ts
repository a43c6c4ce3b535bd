import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EcrxError } from "../../src/errors.js";
import {
  formatReference,
  parseReference,
  validateTag,
  type ImageReference,
} from "../../src/reference/reference.js";

const DIGEST = `sha256:${"ab".repeat(32)}`;
const none = { exists: () => false };
const parse = (text: string, exists: (p: string) => boolean = () => false): ImageReference =>
  parseReference(text, { exists });

function usageError(text: string, message: RegExp): void {
  try {
    parse(text);
  } catch (err) {
    expect(err).toBeInstanceOf(EcrxError);
    expect((err as EcrxError).code).toBe("USAGE");
    expect((err as EcrxError).message).toMatch(message);
    return;
  }
  throw new Error(`expected ${text} to be rejected`);
}

describe("parseReference: ECR", () => {
  it("parses a private ECR reference with tags and digest", () => {
    expect(parse(`123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:v1,latest@${DIGEST}`)).toEqual({
      kind: "ecr",
      registry: "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
      host: "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
      registryId: "123456789012",
      region: "eu-west-1",
      fips: false,
      dualStack: false,
      repository: "team/app",
      tags: ["v1", "latest"],
      digest: DIGEST,
    });
  });

  it("defaults the tag to latest, and to nothing with a digest", () => {
    expect(parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/app")).toMatchObject({ tags: ["latest"] });
    expect(parse(`123456789012.dkr.ecr.us-east-1.amazonaws.com/app@${DIGEST}`)).toMatchObject({
      tags: [],
      digest: DIGEST,
    });
  });

  it("recognises China, FIPS, dual-stack and the local ECR with a port", () => {
    expect(parse("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app:1")).toMatchObject({
      kind: "ecr",
      region: "cn-north-1",
    });
    expect(parse("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/app")).toMatchObject({
      kind: "ecr",
      fips: true,
      region: "us-gov-west-1",
    });
    expect(parse("123456789012.dkr-ecr.us-east-1.on.aws/app")).toMatchObject({
      kind: "ecr",
      dualStack: true,
    });
    expect(parse("123456789012.dkr.ecr.us-east-1.localhost:5000/app:t")).toMatchObject({
      kind: "ecr",
      registry: "123456789012.dkr.ecr.us-east-1.localhost:5000",
      host: "123456789012.dkr.ecr.us-east-1.localhost",
      port: 5000,
      region: "us-east-1",
      repository: "app",
      tags: ["t"],
    });
  });

  it("allows ECR tags up to 300 characters, other registries 128", () => {
    const long = "a".repeat(300);
    expect(parse(`123456789012.dkr.ecr.us-east-1.amazonaws.com/app:${long}`)).toMatchObject({ tags: [long] });
    usageError(`123456789012.dkr.ecr.us-east-1.amazonaws.com/app:${long}a`, /over 300 characters/);
    usageError(`ghcr.io/app:${"a".repeat(129)}`, /over 128 characters/);
  });

  it("names the problem in one line", () => {
    usageError("123456789012.dkr.ecr.us-east-1.amazonaws.com/App:1", /must be lowercase/);
    usageError("123456789012.dkr.ecr.us-east-1.amazonaws.com/a:1", /2 to 256 characters/);
    usageError("123456789012.dkr.ecr.us-east-1.amazonaws.com/app:.bad", /invalid tag "\.bad"/);
    usageError("123456789012.dkr.ecr.us-east-1.amazonaws.com/app:", /empty tag/);
    usageError("123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:123", /invalid digest/);
    usageError("123456789012.dkr.ecr.us-east-1.amazonaws.com/bad//name", /invalid repository name/);
    usageError("", /empty/);
  });
});

describe("parseReference: ECR Public and other registries", () => {
  it("parses ECR Public with alias", () => {
    expect(parse("public.ecr.aws/docker/library/alpine:3.20")).toEqual({
      kind: "ecr-public",
      registry: "public.ecr.aws",
      alias: "docker",
      repository: "library/alpine",
      tags: ["3.20"],
    });
    usageError("public.ecr.aws/alpine", /needs an alias and a repository/);
  });

  it("expands Docker Hub short names like docker", () => {
    expect(parse("alpine")).toEqual({
      kind: "registry",
      registry: "docker.io",
      host: "docker.io",
      repository: "library/alpine",
      tags: ["latest"],
    });
    expect(parse("docker://bitnami/redis:7")).toMatchObject({
      registry: "docker.io",
      repository: "bitnami/redis",
      tags: ["7"],
    });
    expect(formatReference(parse("alpine"))).toBe("docker.io/library/alpine:latest");
  });

  it("parses host:port registries, localhost and IPv6", () => {
    expect(parse("127.0.0.1:5000/repo:tag")).toMatchObject({
      kind: "registry",
      host: "127.0.0.1",
      port: 5000,
      repository: "repo",
    });
    expect(parse("localhost/a/b")).toMatchObject({ registry: "localhost", repository: "a/b" });
    expect(parse("[::1]:5000/x")).toMatchObject({ host: "[::1]", port: 5000 });
    usageError("host:99999/x", /invalid port/);
    usageError("ex_ample.com/x", /invalid registry host/);
  });
});

describe("parseReference: local transports", () => {
  it("parses docker-archive with an optional name:tag", () => {
    expect(parse("docker-archive:out.tar")).toEqual({
      kind: "docker-archive",
      path: "out.tar",
      repoTags: [],
    });
    expect(parse("docker-archive:out.tar:app:v1,v2")).toEqual({
      kind: "docker-archive",
      path: "out.tar",
      repoTags: ["docker.io/library/app:v1", "docker.io/library/app:v2"],
    });
    expect(parse("docker-archive:/x/out.tar:registry.example.com:5000/app")).toMatchObject({
      repoTags: ["registry.example.com:5000/app:latest"],
    });
    usageError("docker-archive:", /needs a path/);
    usageError(`docker-archive:out.tar:app@${DIGEST}`, /cannot hold a digest/);
  });

  it("parses oci and oci-archive with optional tags", () => {
    expect(parse("oci:./layout")).toEqual({ kind: "oci", path: "./layout", tags: [] });
    expect(parse("oci:./layout:v1")).toEqual({ kind: "oci", path: "./layout", tags: ["v1"] });
    expect(parse("oci-archive:img.tar:docker.io/library/alpine:3")).toEqual({
      kind: "oci-archive",
      path: "img.tar",
      tags: ["docker.io/library/alpine:3"],
    });
    usageError("oci:./layout:bad tag", /invalid oci tag/);
  });

  it("keeps a colon in a path that exists", () => {
    expect(parse("oci:/tmp/a:b", (p) => p === "/tmp/a:b")).toEqual({
      kind: "oci",
      path: "/tmp/a:b",
      tags: [],
    });
  });

  it("treats existing and path-like arguments as paths", () => {
    expect(parse("./image.tar", () => true)).toEqual({ kind: "path", path: "./image.tar" });
    expect(parse("/abs/dir", () => true)).toEqual({ kind: "path", path: "/abs/dir" });
    expect(parse("My Image.tar", (p) => p === "My Image.tar")).toEqual({
      kind: "path",
      path: "My Image.tar",
    });
    usageError("./missing.tar", /no such file or folder/);
    // A name that is both a valid reference and a folder stays a reference, as with docker.
    expect(parse("alpine", () => true).kind).toBe("registry");
  });
});

describe("formatReference", () => {
  it("round-trips", () => {
    for (const text of [
      `123456789012.dkr.ecr.us-east-1.amazonaws.com/app:a,b@${DIGEST}`,
      "123456789012.dkr.ecr.us-east-1.localhost:5000/app:t",
      "public.ecr.aws/alias/app:1",
      "docker.io/library/alpine:latest",
      "docker-archive:x.tar:docker.io/library/app:a,b",
      "oci:dir:t",
      "oci-archive:x.tar",
    ]) {
      expect(formatReference(parseReference(text, none))).toBe(text);
    }
  });

  it("parse never throws anything but a USAGE EcrxError, and valid results round-trip", () => {
    const chars = fc.constantFrom(..."abcAZ09.:/@_-,".split(""));
    const text = fc.oneof(
      fc.string(),
      fc.array(chars, { maxLength: 40 }).map((c) => c.join("")),
      fc
        .tuple(
          fc.constantFrom(
            "",
            "docker://",
            "oci:",
            "docker-archive:",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/",
            "public.ecr.aws/",
          ),
          fc.array(chars, { maxLength: 30 }).map((c) => c.join("")),
        )
        .map(([a, b]) => a + b),
    );
    fc.assert(
      fc.property(text, (input) => {
        let ref: ImageReference;
        try {
          ref = parseReference(input, none);
        } catch (err) {
          expect(err).toBeInstanceOf(EcrxError);
          expect((err as EcrxError).code).toBe("USAGE");
          return;
        }
        expect(parseReference(formatReference(ref), none)).toEqual(ref);
      }),
      { numRuns: 2000 },
    );
  });

  it("validateTag accepts the tag grammar", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/), (tag) => {
        validateTag(tag);
      }),
    );
  });
});
