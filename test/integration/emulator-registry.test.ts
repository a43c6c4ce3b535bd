/**
 * The registry (OCI distribution v2) API of `ecrx serve` with raw requests: authentication,
 * manifests, blobs, tags, catalog, referrers, errors, throttling and faults, and images crossing
 * between it and the ECR API in both directions.
 */
import {
  BatchGetImageCommand,
  CreateRepositoryCommand,
  DescribeImagesCommand,
  GetAuthorizationTokenCommand,
  GetDownloadUrlForLayerCommand,
  ListImagesCommand,
  PutImageCommand,
} from "@aws-sdk/client-ecr";
import { GetAuthorizationTokenCommand as GetPublicAuthorizationTokenCommand } from "@aws-sdk/client-ecr-public";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import { ecrClient, ecrPublicClient, pushTestImage } from "../helpers/emulator-clients.js";
import {
  basicAuth,
  prepareImage,
  pushBlob,
  putManifest,
  sha256,
  v2,
  type RegistryImage,
} from "../helpers/registry-http.js";

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";

let server: RunningServer;
let offsetMs = 0;

beforeAll(async () => {
  server = await serve({ port: 0, rates: "off", now: () => new Date(Date.now() + offsetMs) });
  for (const repositoryName of ["app", "other", "empty", "team/web", "frozen", "refs", "gone"]) {
    await ecrClient(server).send(
      new CreateRepositoryCommand({
        repositoryName,
        ...(repositoryName === "frozen" ? { imageTagMutability: "IMMUTABLE" } : {}),
      }),
    );
  }
});
afterAll(async () => {
  await server.close();
});

async function imageTags(repositoryName: string): Promise<string[]> {
  const out = await ecrClient(server).send(new ListImagesCommand({ repositoryName }));
  return (out.imageIds ?? []).flatMap((id) => (id.imageTag === undefined ? [] : [id.imageTag])).sort();
}

describe("authentication", () => {
  it("answers 401 with ECR's challenge without credentials, 200 with them", async () => {
    const refused = await v2(server, "GET", "/v2/", { auth: false });
    expect(refused.status).toBe(401);
    expect(refused.code).toBe("UNAUTHORIZED");
    expect(refused.headers["www-authenticate"]).toBe(
      `Basic realm="https://127.0.0.1:${server.port}/",service="ecr.amazonaws.com"`,
    );
    expect(refused.headers["docker-distribution-api-version"]).toBe("registry/2.0");
    const accepted = await v2(server, "GET", "/v2/");
    expect(accepted.status).toBe(200);
    expect(accepted.headers["docker-distribution-api-version"]).toBe("registry/2.0");
  });

  it("takes the token of GetAuthorizationToken as it is", async () => {
    const out = await ecrClient(server).send(new GetAuthorizationTokenCommand({}));
    const token = out.authorizationData?.[0]?.authorizationToken ?? "";
    expect((await v2(server, "GET", "/v2/", { auth: `Basic ${token}` })).status).toBe(200);
  });

  it("refuses a wrong password, another user name, a bearer token and ECR Public's token", async () => {
    const password = server.registryPassword();
    const forged = `${password.slice(0, -4)}AAAA`;
    const publicToken =
      (await ecrPublicClient(server).send(new GetPublicAuthorizationTokenCommand({}))).authorizationData
        ?.authorizationToken ?? "";
    for (const auth of [
      basicAuth(forged),
      `Basic ${Buffer.from(`admin:${password}`).toString("base64")}`,
      `Bearer ${password}`,
      `Basic ${publicToken}`,
    ]) {
      const answer = await v2(server, "GET", "/v2/app/tags/list", { auth });
      expect(answer.status).toBe(401);
      expect(answer.code).toBe("UNAUTHORIZED");
      expect(answer.headers["www-authenticate"]).toMatch(/^Basic realm=/);
    }
  });

  it("refuses an expired token with DENIED, and changes nothing", async () => {
    const password = server.registryPassword();
    const image = await prepareImage(server, "app");
    offsetMs = 12 * 3600 * 1000 + 1000;
    try {
      const answer = await v2(server, "PUT", "/v2/app/manifests/expired", {
        auth: basicAuth(password),
        body: image.manifest,
        headers: { "content-type": OCI_MANIFEST },
      });
      expect(answer.status).toBe(401);
      expect(answer.code).toBe("DENIED");
      expect(answer.body.toString()).toContain("Your authorization token has expired");
      const get = await v2(server, "GET", "/v2/", { auth: basicAuth(password) });
      expect(get.status).toBe(401);
    } finally {
      offsetMs = 0;
    }
    expect(await imageTags("app")).not.toContain("expired");
  });
});

describe("manifests", () => {
  let pushed: Awaited<ReturnType<typeof pushTestImage>>;

  beforeAll(async () => {
    pushed = await pushTestImage(ecrClient(server), "app", { tag: "from-ecr-api" });
  });

  it("serves an image pushed with the ECR API by tag and by digest, GET and HEAD", async () => {
    for (const reference of ["from-ecr-api", pushed.manifestDigest]) {
      const get = await v2(server, "GET", `/v2/app/manifests/${reference}`);
      expect(get.status).toBe(200);
      expect(get.body.toString()).toBe(pushed.manifest);
      expect(get.headers["content-type"]).toBe(OCI_MANIFEST);
      expect(get.headers["docker-content-digest"]).toBe(pushed.manifestDigest);
      expect(Number(get.headers["content-length"])).toBe(Buffer.byteLength(pushed.manifest));
      const head = await v2(server, "HEAD", `/v2/app/manifests/${reference}`);
      expect(head.status).toBe(200);
      expect(head.body.length).toBe(0);
      expect(head.headers["content-length"]).toBe(get.headers["content-length"]);
      expect(head.headers["docker-content-digest"]).toBe(pushed.manifestDigest);
    }
    // A `:` escaped in the path is the same digest.
    const escaped = await v2(server, "GET", `/v2/app/manifests/${pushed.manifestDigest.replace(":", "%3A")}`);
    expect(escaped.status).toBe(200);
  });

  it("negotiates Accept without ever converting", async () => {
    const path = "/v2/app/manifests/from-ecr-api";
    for (const accept of ["*/*", OCI_MANIFEST, `${DOCKER_MANIFEST}, ${OCI_MANIFEST};q=0.5`]) {
      const answer = await v2(server, "GET", path, { headers: { accept } });
      expect(answer.status).toBe(200);
      expect(answer.headers["content-type"]).toBe(OCI_MANIFEST);
    }
    const refused = await v2(server, "GET", path, { headers: { accept: DOCKER_MANIFEST } });
    expect(refused.status).toBe(404);
    expect(refused.code).toBe("MANIFEST_UNKNOWN");
  });

  it("answers unknown images, repositories and malformed references with the spec's codes", async () => {
    const cases: [string, number, string][] = [
      ["/v2/app/manifests/no-such-tag", 404, "MANIFEST_UNKNOWN"],
      [`/v2/app/manifests/${sha256("nothing")}`, 404, "MANIFEST_UNKNOWN"],
      ["/v2/missing/manifests/latest", 404, "NAME_UNKNOWN"],
      ["/v2/Bad_Name/manifests/latest", 400, "NAME_INVALID"],
      ["/v2/app/manifests/sha256:xyz", 400, "DIGEST_INVALID"],
      ["/v2/app/manifests/-dash-first", 400, "TAG_INVALID"],
      [`/v2/app/manifests/${"t".repeat(301)}`, 400, "TAG_INVALID"],
    ];
    for (const [path, status, code] of cases) {
      const answer = await v2(server, "GET", path);
      expect([path, answer.status, answer.code]).toEqual([path, status, code]);
    }
    const missing = await v2(server, "GET", "/v2/missing/tags/list");
    expect(missing.body.toString()).toContain(
      "The repository with name 'missing' does not exist in the registry with id '000000000000'",
    );
  });

  it("accepts a push read back through BatchGetImage, GetDownloadUrlForLayer and DescribeImages", async () => {
    const image = await prepareImage(server, "team/web", {}, Buffer.from("a layer pushed through /v2/"));
    const put = await putManifest(server, "team/web", "v1", image.manifest);
    expect(put.status).toBe(201);
    expect(put.headers.location).toBe(`/v2/team/web/manifests/${image.digest}`);
    expect(put.headers["docker-content-digest"]).toBe(image.digest);

    const client = ecrClient(server);
    const got = await client.send(
      new BatchGetImageCommand({ repositoryName: "team/web", imageIds: [{ imageTag: "v1" }] }),
    );
    expect(got.images?.[0]?.imageManifest).toBe(image.manifest);
    expect(got.images?.[0]?.imageId?.imageDigest).toBe(image.digest);
    expect(got.images?.[0]?.imageManifestMediaType).toBe(OCI_MANIFEST);
    const { downloadUrl } = await client.send(
      new GetDownloadUrlForLayerCommand({ repositoryName: "team/web", layerDigest: image.layerDigest }),
    );
    const download = await request(downloadUrl!);
    expect(Buffer.from(await download.body.arrayBuffer())).toEqual(image.layer);
    const described = await client.send(new DescribeImagesCommand({ repositoryName: "team/web" }));
    expect(described.imageDetails?.[0]?.imageSizeInBytes).toBe(image.layer.length);
  });

  it("refuses a manifest whose blobs are not in the repository, changing nothing", async () => {
    const image = await prepareImage(server, "other");
    const answer = await putManifest(server, "empty", "v1", image.manifest);
    expect(answer.status).toBe(400);
    expect(answer.code).toBe("MANIFEST_BLOB_UNKNOWN");
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_MANIFEST, digest: sha256("no such manifest"), size: 10 }],
    });
    const indexAnswer = await putManifest(server, "empty", "v1", index, OCI_INDEX);
    expect(indexAnswer.code).toBe("MANIFEST_BLOB_UNKNOWN");
    expect(await imageTags("empty")).toEqual([]);
  });

  it("validates the manifest like PutImage: JSON, media type, size", async () => {
    const image = await prepareImage(server, "app");
    const cases: [string | Buffer, string | undefined, number, string][] = [
      ["{not json", OCI_MANIFEST, 400, "MANIFEST_INVALID"],
      ["", OCI_MANIFEST, 400, "MANIFEST_INVALID"],
      [image.manifest, DOCKER_MANIFEST, 400, "MANIFEST_INVALID"],
      [image.manifest, `${OCI_MANIFEST}; charset=utf-8`, 400, "MANIFEST_INVALID"],
      [
        Buffer.concat([Buffer.from(image.manifest.slice(0, -1)), Buffer.from([0xff, 0x7d])]),
        OCI_MANIFEST,
        400,
        "MANIFEST_INVALID",
      ],
      [
        JSON.stringify({ ...JSON.parse(image.manifest), pad: "x".repeat(4 * 1024 * 1024) }),
        OCI_MANIFEST,
        413,
        "MANIFEST_INVALID",
      ],
    ];
    for (const [body, contentType, status, code] of cases) {
      const answer = await v2(server, "PUT", "/v2/app/manifests/invalid", {
        body,
        headers: contentType === undefined ? {} : { "content-type": contentType },
      });
      expect([answer.status, answer.code]).toEqual([status, code]);
    }
    expect(await imageTags("app")).not.toContain("invalid");
    // Without Content-Type the manifest's own mediaType is enough.
    const plain = await v2(server, "PUT", "/v2/app/manifests/plain", { body: image.manifest });
    expect(plain.status).toBe(201);
  });

  it("takes a push by digest, refuses a digest that does not match, and repeats identical pushes", async () => {
    const image = await prepareImage(server, "app");
    expect((await putManifest(server, "app", image.digest, image.manifest)).status).toBe(201);
    const wrong = await putManifest(server, "app", sha256("other bytes"), image.manifest);
    expect([wrong.status, wrong.code]).toEqual([400, "DIGEST_INVALID"]);
    expect((await putManifest(server, "app", "again", image.manifest)).status).toBe(201);
    expect((await putManifest(server, "app", "again", image.manifest)).status).toBe(201);
    const sha512 = await putManifest(server, "app", `sha512:${"a".repeat(128)}`, image.manifest);
    expect(sha512.code).toBe("DIGEST_INVALID");
  });

  it("refuses to move an immutable tag with TAG_INVALID, and accepts the identical push", async () => {
    const first = await prepareImage(server, "frozen");
    const second = await prepareImage(server, "frozen");
    expect((await putManifest(server, "frozen", "1.0", first.manifest)).status).toBe(201);
    const moved = await putManifest(server, "frozen", "1.0", second.manifest);
    expect(moved.status).toBe(400);
    expect(moved.code).toBe("TAG_INVALID");
    expect(moved.body.toString()).toContain(
      "The image tag '1.0' already exists in the 'frozen' repository and cannot be overwritten because the tag is immutable.",
    );
    expect((await putManifest(server, "frozen", "1.0", first.manifest)).status).toBe(201);
    const tagged = await v2(server, "HEAD", "/v2/frozen/manifests/1.0");
    expect(tagged.headers["docker-content-digest"]).toBe(first.digest);
  });

  it("deletes by digest (202) and by tag, refuses a child of an index and unknown images", async () => {
    const image = await prepareImage(server, "gone");
    await putManifest(server, "gone", "a", image.manifest);
    await putManifest(server, "gone", "b", image.manifest);
    expect((await v2(server, "DELETE", "/v2/gone/manifests/a")).status).toBe(202);
    expect(await imageTags("gone")).toEqual(["b"]);
    expect((await v2(server, "DELETE", `/v2/gone/manifests/${image.digest}`)).status).toBe(202);
    expect((await v2(server, "GET", `/v2/gone/manifests/${image.digest}`)).code).toBe("MANIFEST_UNKNOWN");
    const again = await v2(server, "DELETE", `/v2/gone/manifests/${image.digest}`);
    expect([again.status, again.code]).toEqual([404, "MANIFEST_UNKNOWN"]);

    const child = await prepareImage(server, "gone");
    await putManifest(server, "gone", child.digest, child.manifest);
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_MANIFEST, digest: child.digest, size: Buffer.byteLength(child.manifest) }],
    });
    expect((await putManifest(server, "gone", "multi", index, OCI_INDEX)).status).toBe(201);
    const refused = await v2(server, "DELETE", `/v2/gone/manifests/${child.digest}`);
    expect([refused.status, refused.code]).toEqual([409, "DENIED"]);
    expect((await v2(server, "HEAD", `/v2/gone/manifests/${child.digest}`)).status).toBe(200);
  });
});

describe("blobs", () => {
  let image: RegistryImage;

  beforeAll(async () => {
    image = await prepareImage(server, "app", {}, Buffer.from("blob bytes ".repeat(1000)));
    await putManifest(server, "app", "blobs", image.manifest);
  });

  it("answers HEAD with size and digest, and 404 for a blob of another repository", async () => {
    const head = await v2(server, "HEAD", `/v2/app/blobs/${image.layerDigest}`);
    expect(head.status).toBe(200);
    expect(Number(head.headers["content-length"])).toBe(image.layer.length);
    expect(head.headers["docker-content-digest"]).toBe(image.layerDigest);
    const elsewhere = await v2(server, "HEAD", `/v2/other/blobs/${image.layerDigest}`);
    expect(elsewhere.status).toBe(404);
    const get = await v2(server, "GET", `/v2/other/blobs/${image.layerDigest}`);
    expect([get.status, get.code]).toEqual([404, "BLOB_UNKNOWN"]);
    expect((await v2(server, "GET", "/v2/app/blobs/sha256:12")).code).toBe("DIGEST_INVALID");
  });

  it("redirects GET (307) to a download URL on another host name, fetched without Authorization", async () => {
    const get = await v2(server, "GET", `/v2/app/blobs/${image.layerDigest}`);
    expect(get.status).toBe(307);
    expect(get.headers["docker-content-digest"]).toBe(image.layerDigest);
    const location = new URL(get.headers.location!);
    expect(location.hostname).toBe("localhost");
    expect(location.searchParams.get("X-Amz-Expires")).toBe("3600");
    const download = await request(location);
    expect(download.statusCode).toBe(200);
    expect(Buffer.from(await download.body.arrayBuffer())).toEqual(image.layer);
    // A client that forwards the registry's credentials is refused, as S3 does.
    const forwarded = await request(location, {
      headers: { authorization: basicAuth(server.registryPassword()) },
    });
    expect(forwarded.statusCode).toBe(400);
    await forwarded.body.dump();
    // Reached as localhost, the redirect goes to 127.0.0.1.
    const viaLocalhost = await request(`http://localhost:${server.port}/v2/app/blobs/${image.layerDigest}`, {
      headers: { authorization: basicAuth(server.registryPassword()) },
    });
    await viaLocalhost.body.dump();
    expect(new URL(String(viaLocalhost.headers.location)).hostname).toBe("127.0.0.1");
  });

  it("does not hand out a blob no image references (HEAD still sees it)", async () => {
    const digest = await pushBlob(server, "app", Buffer.from("uploaded, never referenced"));
    expect((await v2(server, "HEAD", `/v2/app/blobs/${digest}`)).status).toBe(200);
    const get = await v2(server, "GET", `/v2/app/blobs/${digest}`);
    expect([get.status, get.code]).toEqual([404, "BLOB_UNKNOWN"]);
  });

  it("refuses DELETE of a blob (405 UNSUPPORTED) and other methods", async () => {
    const answer = await v2(server, "DELETE", `/v2/app/blobs/${image.layerDigest}`);
    expect([answer.status, answer.code]).toEqual([405, "UNSUPPORTED"]);
    expect((await v2(server, "HEAD", `/v2/app/blobs/${image.layerDigest}`)).status).toBe(200);
    const post = await v2(server, "POST", "/v2/app/manifests/latest");
    expect([post.status, post.code]).toEqual([405, "UNSUPPORTED"]);
    expect((await v2(server, "GET", "/v2/app/nothing-here")).status).toBe(404);
  });
});

describe("tags, catalog, referrers", () => {
  it("lists tags in order, paged by n and last with a Link header", async () => {
    const image = await prepareImage(server, "other");
    for (const tag of ["c", "a", "b", "d"]) await putManifest(server, "other", tag, image.manifest);
    const all = await v2(server, "GET", "/v2/other/tags/list");
    expect(JSON.parse(all.body.toString())).toEqual({ name: "other", tags: ["a", "b", "c", "d"] });
    expect(all.headers.link).toBeUndefined();
    const first = await v2(server, "GET", "/v2/other/tags/list?n=3");
    expect(JSON.parse(first.body.toString()).tags).toEqual(["a", "b", "c"]);
    expect(first.headers.link).toBe('</v2/other/tags/list?n=3&last=c>; rel="next"');
    const next = await v2(server, "GET", "/v2/other/tags/list?n=3&last=c");
    expect(JSON.parse(next.body.toString()).tags).toEqual(["d"]);
    expect(next.headers.link).toBeUndefined();
    expect(JSON.parse((await v2(server, "GET", "/v2/other/tags/list?n=0")).body.toString()).tags).toEqual([]);
    const bad = await v2(server, "GET", "/v2/other/tags/list?n=many");
    expect([bad.status, bad.code]).toEqual([400, "PAGINATION_NUMBER_INVALID"]);
  });

  it("lists repositories in the catalog, paged", async () => {
    const all = JSON.parse((await v2(server, "GET", "/v2/_catalog")).body.toString()) as {
      repositories: string[];
    };
    expect(all.repositories).toEqual([...all.repositories].sort());
    expect(all.repositories).toEqual(expect.arrayContaining(["app", "other", "team/web"]));
    const page = await v2(server, "GET", "/v2/_catalog?n=2&last=app");
    expect(JSON.parse(page.body.toString()).repositories).toEqual(["empty", "frozen"]);
    expect(page.headers.link).toBe('</v2/_catalog?n=2&last=frozen>; rel="next"');
  });

  it("answers the referrers of a digest, with the OCI-Subject header on push and artifactType filtering", async () => {
    const subject = await prepareImage(server, "refs");
    await putManifest(server, "refs", "v1", subject.manifest);
    const descriptor = {
      mediaType: OCI_MANIFEST,
      digest: subject.digest,
      size: Buffer.byteLength(subject.manifest),
    };
    const signature = await prepareImage(server, "refs", {
      artifactType: "application/vnd.example.signature",
      subject: descriptor,
      annotations: { "org.example.kind": "signature" },
    });
    const sbom = await prepareImage(server, "refs", { subject: descriptor });
    for (const referrer of [signature, sbom]) {
      const put = await putManifest(server, "refs", referrer.digest, referrer.manifest);
      expect(put.status).toBe(201);
      expect(put.headers["oci-subject"]).toBe(subject.digest);
    }
    const all = await v2(server, "GET", `/v2/refs/referrers/${subject.digest}`);
    expect(all.status).toBe(200);
    expect(all.headers["content-type"]).toBe(OCI_INDEX);
    const index = JSON.parse(all.body.toString()) as { manifests: Record<string, unknown>[] };
    expect(index.manifests).toHaveLength(2);
    expect(index.manifests).toContainEqual({
      mediaType: OCI_MANIFEST,
      digest: signature.digest,
      size: Buffer.byteLength(signature.manifest),
      artifactType: "application/vnd.example.signature",
      annotations: { "org.example.kind": "signature" },
    });
    expect(index.manifests).toContainEqual({
      mediaType: OCI_MANIFEST,
      digest: sbom.digest,
      size: Buffer.byteLength(sbom.manifest),
      artifactType: "application/vnd.oci.image.config.v1+json",
    });
    const filtered = await v2(
      server,
      "GET",
      `/v2/refs/referrers/${subject.digest}?artifactType=application/vnd.example.signature`,
    );
    expect(filtered.headers["oci-filters-applied"]).toBe("artifactType");
    expect((JSON.parse(filtered.body.toString()) as { manifests: unknown[] }).manifests).toHaveLength(1);
    const none = await v2(server, "GET", `/v2/refs/referrers/${sha256("no subject")}`);
    expect(JSON.parse(none.body.toString()).manifests).toEqual([]);
    expect((await v2(server, "GET", "/v2/refs/referrers/not-a-digest")).code).toBe("DIGEST_INVALID");
  });
});

describe("cross-API", () => {
  it("a blob uploaded through /v2/ serves PutImage on the ECR API", async () => {
    const image = await prepareImage(server, "other");
    await ecrClient(server).send(
      new PutImageCommand({ repositoryName: "other", imageManifest: image.manifest, imageTag: "sdk" }),
    );
    const get = await v2(server, "GET", "/v2/other/manifests/sdk");
    expect(get.headers["docker-content-digest"]).toBe(image.digest);
  });
});

describe("throttling and faults", () => {
  it("throttles with 429 TOOMANYREQUESTS at PutImage's rate", async () => {
    const limited = await serve({ port: 0 });
    try {
      await ecrClient(limited).send(new CreateRepositoryCommand({ repositoryName: "app" }));
      const image = await prepareImage(limited, "app");
      const answers = await Promise.all(
        Array.from({ length: 30 }, (_, i) => putManifest(limited, "app", `t${i}`, image.manifest)),
      );
      const throttled = answers.filter((a) => a.status === 429);
      expect(throttled.length).toBeGreaterThan(0);
      expect(throttled[0]?.code).toBe("TOOMANYREQUESTS");
      expect(answers.filter((a) => a.status === 201).length).toBeGreaterThanOrEqual(10);
    } finally {
      await limited.close();
    }
  });

  it("applies the registry fault target: throttle, error, reset, lost", async () => {
    for (const [kind, expected] of [
      ["throttle", [429, "TOOMANYREQUESTS"]],
      ["error", [500, "UNKNOWN"]],
    ] as const) {
      const faulty = await serve({ port: 0, faults: `registry:${kind}=1` });
      try {
        const answer = await v2(faulty, "GET", "/v2/");
        expect([answer.status, answer.code]).toEqual(expected);
      } finally {
        await faulty.close();
      }
    }
    const resetting = await serve({ port: 0, faults: "registry:reset=1" });
    try {
      await expect(v2(resetting, "GET", "/v2/")).rejects.toThrow();
    } finally {
      await resetting.close();
    }
  });

  it("lost: the manifest is stored, the answer never comes", async () => {
    const losing = await serve({ port: 0, faults: "registry:lost=1" });
    try {
      const client = ecrClient(losing);
      await client.send(new CreateRepositoryCommand({ repositoryName: "app" }));
      const pushed = await pushTestImage(client, "app");
      await expect(putManifest(losing, "app", "lost", pushed.manifest)).rejects.toThrow();
      const out = await client.send(new ListImagesCommand({ repositoryName: "app" }));
      expect(out.imageIds?.map((id) => id.imageTag)).toContain("lost");
    } finally {
      await losing.close();
    }
  });
});
