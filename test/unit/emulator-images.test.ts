/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument -- operation outputs are untyped wire JSON, inspected member by member */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Env, expectApiError, ociIndex, ociManifest, sha256 } from "./emulator-helpers.js";

let env: Env;
beforeEach(async () => {
  env = await Env.create();
  await env.createRepo("app");
});
afterEach(async () => env.dispose());

async function blobs(repositoryName = "app"): Promise<{ config: string; layer: string; manifest: string }> {
  const config = await env.pushBlob(repositoryName, '{"os":"linux"}');
  const layer = await env.pushBlob(repositoryName, "layer-bytes");
  return {
    config,
    layer,
    manifest: ociManifest({ digest: config, size: 14 }, [{ digest: layer, size: 11 }]),
  };
}

describe("PutImage", () => {
  it("stores the manifest verbatim under the sha256 of its bytes", async () => {
    const { config, layer } = await blobs();
    // Odd spacing and non-ASCII: a re-serialization would change the digest.
    const manifest = `{ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "config": {"mediaType":"application/vnd.oci.image.config.v1+json","digest":"${config}","size":14},
      "layers": [{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"${layer}","size":11}],
      "annotations": {"note": "café ☕"} }`;
    const out = await env.call("PutImage", {
      repositoryName: "app",
      imageManifest: manifest,
      imageTag: "v1",
    });
    const digest = sha256(Buffer.from(manifest, "utf8"));
    expect(out.image).toEqual({
      registryId: "123456789012",
      repositoryName: "app",
      imageId: { imageDigest: digest, imageTag: "v1" },
      imageManifest: manifest,
      imageManifestMediaType: "application/vnd.oci.image.manifest.v1+json",
    });
    const got = await env.call("BatchGetImage", {
      repositoryName: "app",
      imageIds: [{ imageDigest: digest }],
    });
    expect(got.images[0].imageManifest).toBe(manifest);
    expect(got.images[0].imageId).toEqual({ imageDigest: digest });
  });

  it("takes the media type from imageManifestMediaType when the manifest has none", async () => {
    const { manifest } = await blobs();
    const bare = JSON.stringify({ ...JSON.parse(manifest), mediaType: undefined });
    await expectApiError(
      env.call("PutImage", { repositoryName: "app", imageManifest: bare }),
      "InvalidParameterException",
      /Invalid JSON syntax/,
    );
    const out = await env.call("PutImage", {
      repositoryName: "app",
      imageManifest: bare,
      imageManifestMediaType: "application/vnd.oci.image.manifest.v1+json",
    });
    expect(out.image.imageManifestMediaType).toBe("application/vnd.oci.image.manifest.v1+json");
  });

  it("refuses a mismatched, parameterised or unsupported media type and bad JSON", async () => {
    const { manifest } = await blobs();
    const put = (extra: Record<string, unknown>): Promise<unknown> =>
      env.call("PutImage", { repositoryName: "app", imageManifest: manifest, ...extra });
    await expectApiError(
      put({ imageManifestMediaType: "application/vnd.docker.distribution.manifest.v2+json" }),
      "InvalidParameterException",
      /does not match/,
    );
    await expectApiError(
      put({ imageManifestMediaType: "application/vnd.oci.image.manifest.v1+json; charset=utf-8" }),
      "InvalidParameterException",
      /parameters/,
    );
    const schema1 = JSON.stringify({
      ...JSON.parse(manifest),
      mediaType: "application/vnd.docker.distribution.manifest.v1+json",
    });
    await expectApiError(
      env.call("PutImage", { repositoryName: "app", imageManifest: schema1 }),
      "InvalidParameterException",
      /Unsupported/,
    );
    await expectApiError(
      env.call("PutImage", { repositoryName: "app", imageManifest: "{not json" }),
      "InvalidParameterException",
      /Invalid JSON syntax/,
    );
    await expectApiError(
      env.call("PutImage", { repositoryName: "app", imageManifest: "" }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("PutImage", { repositoryName: "app", imageManifest: "x".repeat(4_194_305) }),
      "InvalidParameterException",
    );
    await expectApiError(put({ imageTag: "" }), "InvalidParameterException");
    await expectApiError(put({ imageTag: "t".repeat(301) }), "InvalidParameterException");
    const noConfig = JSON.stringify({ ...JSON.parse(manifest), config: undefined });
    await expectApiError(
      env.call("PutImage", { repositoryName: "app", imageManifest: noConfig }),
      "InvalidParameterException",
    );
  });

  it("accepts a zero-layer manifest and Docker media types", async () => {
    const config = await env.pushBlob("app", "{}");
    const docker = JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.docker.distribution.manifest.v2+json",
      config: { mediaType: "application/vnd.docker.container.image.v1+json", digest: config, size: 2 },
      layers: [],
    });
    const out = await env.call("PutImage", {
      repositoryName: "app",
      imageManifest: docker,
      imageTag: "empty",
    });
    expect(out.image.imageManifestMediaType).toBe("application/vnd.docker.distribution.manifest.v2+json");
  });

  it("requires config and layers in this repository", async () => {
    await env.createRepo("other");
    const { manifest } = await blobs("other");
    await expectApiError(
      env.call("PutImage", { repositoryName: "app", imageManifest: manifest }),
      "LayersNotFoundException",
    );
    const missingLayer = ociManifest({ digest: await env.pushBlob("app", '{"os":"linux"}'), size: 14 }, [
      { digest: sha256("nope"), size: 4 },
    ]);
    await expectApiError(
      env.call("PutImage", { repositoryName: "app", imageManifest: missingLayer }),
      "LayersNotFoundException",
      /sha256:/,
    );
  });

  it("requires index children in this repository; children go first by digest", async () => {
    const a = await env.pushImage("app", { layers: ["a"] });
    const index = ociIndex([
      { digest: a.digest, size: Buffer.byteLength(a.manifest) },
      { digest: sha256("missing"), size: 10 },
    ]);
    await expectApiError(
      env.call("PutImage", { repositoryName: "app", imageManifest: index, imageTag: "multi" }),
      "ReferencedImagesNotFoundException",
    );
    const b = await env.pushImage("app", { layers: ["bb", "bbb"] });
    const good = ociIndex([a, b].map((m) => ({ digest: m.digest, size: Buffer.byteLength(m.manifest) })));
    await env.call("PutImage", { repositoryName: "app", imageManifest: good, imageTag: "multi" });
    const details = await env.call("DescribeImages", {
      repositoryName: "app",
      imageIds: [{ imageTag: "multi" }],
    });
    // An index reports its largest child.
    expect(details.imageDetails[0].imageSizeInBytes).toBe(5);
    expect(details.imageDetails[0].artifactMediaType).toBeUndefined();
  });

  it("reports an identical push, with or without the tag", async () => {
    const { manifest } = await blobs();
    await env.call("PutImage", { repositoryName: "app", imageManifest: manifest, imageTag: "v1" });
    await expectApiError(
      env.call("PutImage", { repositoryName: "app", imageManifest: manifest, imageTag: "v1" }),
      "ImageAlreadyExistsException",
    );
    await expectApiError(
      env.call("PutImage", { repositoryName: "app", imageManifest: manifest }),
      "ImageAlreadyExistsException",
    );
    // A new tag on the same digest is a change.
    await env.call("PutImage", { repositoryName: "app", imageManifest: manifest, imageTag: "v2" });
    const list = await env.call("ListImages", { repositoryName: "app" });
    expect(list.imageIds.map((i: any) => i.imageTag).sort()).toEqual(["v1", "v2"]);
  });

  it("moves a tag in a mutable repository, leaving the old image untagged", async () => {
    const one = await env.pushImage("app", { tag: "latest" });
    const two = await env.pushImage("app", { tag: "latest" });
    const untagged = await env.call("ListImages", {
      repositoryName: "app",
      filter: { tagStatus: "UNTAGGED" },
    });
    expect(untagged.imageIds).toEqual([{ imageDigest: one.digest }]);
    const got = await env.call("BatchGetImage", {
      repositoryName: "app",
      imageIds: [{ imageTag: "latest" }],
    });
    expect(got.images[0].imageId.imageDigest).toBe(two.digest);
  });

  it("refuses to move a tag of an immutable repository but accepts the identical image", async () => {
    await env.createRepo("fixed", { imageTagMutability: "IMMUTABLE" });
    const one = await env.pushImage("fixed", { tag: "v1" });
    const config = await env.pushBlob("fixed", '{"other":1}');
    const other = ociManifest({ digest: config, size: 11 }, []);
    await expectApiError(
      env.call("PutImage", { repositoryName: "fixed", imageManifest: other, imageTag: "v1" }),
      "ImageTagAlreadyExistsException",
    );
    await expectApiError(
      env.call("PutImage", { repositoryName: "fixed", imageManifest: one.manifest, imageTag: "v1" }),
      "ImageAlreadyExistsException",
    );
    await env.call("PutImage", { repositoryName: "fixed", imageManifest: other, imageTag: "v2" });
  });

  it("applies exclusion filters of the *_WITH_EXCLUSION mutabilities", async () => {
    await env.createRepo("mixed", {
      imageTagMutability: "IMMUTABLE_WITH_EXCLUSION",
      imageTagMutabilityExclusionFilters: [{ filterType: "WILDCARD", filter: "latest*" }],
    });
    await env.pushImage("mixed", { tag: "latest-dev" });
    await env.pushImage("mixed", { tag: "latest-dev" });
    await env.pushImage("mixed", { tag: "1.0" });
    await expectApiError(env.pushImage("mixed", { tag: "1.0" }), "ImageTagAlreadyExistsException");

    await env.createRepo("mostly", {
      imageTagMutability: "MUTABLE_WITH_EXCLUSION",
      imageTagMutabilityExclusionFilters: [{ filterType: "WILDCARD", filter: "release-*" }],
    });
    await env.pushImage("mostly", { tag: "dev" });
    await env.pushImage("mostly", { tag: "dev" });
    await env.pushImage("mostly", { tag: "release-1" });
    await expectApiError(env.pushImage("mostly", { tag: "release-1" }), "ImageTagAlreadyExistsException");
  });

  it("checks imageDigest against the manifest bytes", async () => {
    const { manifest } = await blobs();
    await expectApiError(
      env.call("PutImage", { repositoryName: "app", imageManifest: manifest, imageDigest: sha256("other") }),
      "ImageDigestDoesNotMatchException",
    );
    await expectApiError(
      env.call("PutImage", { repositoryName: "app", imageManifest: manifest, imageDigest: "bogus" }),
      "InvalidParameterException",
    );
    const out = await env.call("PutImage", {
      repositoryName: "app",
      imageManifest: manifest,
      imageDigest: sha256(manifest),
    });
    expect(out.image.imageId.imageDigest).toBe(sha256(manifest));
  });

  it("never creates a repository", async () => {
    const { manifest } = await blobs();
    await expectApiError(
      env.call("PutImage", { repositoryName: "ghost", imageManifest: manifest }),
      "RepositoryNotFoundException",
    );
  });
});

describe("BatchGetImage", () => {
  it("returns images by tag or digest and failures for the rest", async () => {
    const img = await env.pushImage("app", { tag: "v1" });
    const other = await env.pushImage("app", { tag: "v2" });
    const out = await env.call("BatchGetImage", {
      repositoryName: "app",
      imageIds: [
        { imageTag: "v1" },
        { imageDigest: img.digest, imageTag: "v1" },
        { imageTag: "nope" },
        { imageDigest: sha256("nope") },
        { imageDigest: "garbage" },
        { imageTag: "x".repeat(301) },
        { imageDigest: other.digest, imageTag: "v1" },
        {},
      ],
    });
    expect(out.images.map((i: any) => i.imageId)).toEqual([
      { imageDigest: img.digest, imageTag: "v1" },
      { imageDigest: img.digest, imageTag: "v1" },
    ]);
    expect(out.failures.map((f: any) => f.failureCode)).toEqual([
      "ImageNotFound",
      "ImageNotFound",
      "InvalidImageDigest",
      "InvalidImageTag",
      "ImageTagDoesNotMatchDigest",
      "MissingDigestAndTag",
    ]);
    expect(out.failures[0]).toEqual({
      imageId: { imageTag: "nope" },
      failureCode: "ImageNotFound",
      failureReason: "Requested image not found",
    });
  });

  it("filters by acceptedMediaTypes without converting", async () => {
    await env.pushImage("app", { tag: "v1" });
    const docker = await env.call("BatchGetImage", {
      repositoryName: "app",
      imageIds: [{ imageTag: "v1" }],
      acceptedMediaTypes: ["application/vnd.docker.distribution.manifest.v2+json"],
    });
    expect(docker.images).toEqual([]);
    expect(docker.failures[0].failureCode).toBe("ImageNotFound");
    const oci = await env.call("BatchGetImage", {
      repositoryName: "app",
      imageIds: [{ imageTag: "v1" }],
      acceptedMediaTypes: ["application/vnd.oci.image.manifest.v1+json"],
    });
    expect(oci.images).toHaveLength(1);
    await expectApiError(
      env.call("BatchGetImage", {
        repositoryName: "app",
        imageIds: [{ imageTag: "v1" }],
        acceptedMediaTypes: [],
      }),
      "InvalidParameterException",
    );
  });

  it("validates the id list", async () => {
    await expectApiError(
      env.call("BatchGetImage", { repositoryName: "app", imageIds: [] }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("BatchGetImage", { repositoryName: "app", imageIds: Array(101).fill({ imageTag: "a" }) }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("BatchGetImage", { repositoryName: "app", imageIds: ["v1"] }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("BatchGetImage", { repositoryName: "app", imageIds: [{ imageTag: 5 }] }),
      "InvalidParameterException",
    );
  });
});

describe("GetDownloadUrlForLayer", () => {
  it("gives the context's URL for a layer of an image of this repository", async () => {
    const img = await env.pushImage("app", { tag: "v1", layers: ["payload"] });
    const out = await env.call("GetDownloadUrlForLayer", {
      repositoryName: "app",
      layerDigest: img.layerDigests[0],
    });
    expect(out).toEqual({
      downloadUrl: `http://127.0.0.1:1/blob/${img.layerDigests[0]}?sig=x`,
      layerDigest: img.layerDigests[0],
    });
    expect(env.store.blobPath(img.layerDigests[0]!)).toBeDefined();
  });

  it("distinguishes absent from unreferenced layers", async () => {
    await env.createRepo("other");
    const loose = await env.pushBlob("app", "loose");
    await expectApiError(
      env.call("GetDownloadUrlForLayer", { repositoryName: "app", layerDigest: loose }),
      "LayerInaccessibleException",
    );
    await expectApiError(
      env.call("GetDownloadUrlForLayer", { repositoryName: "other", layerDigest: loose }),
      "LayersNotFoundException",
    );
    await expectApiError(
      env.call("GetDownloadUrlForLayer", { repositoryName: "app", layerDigest: sha256("none") }),
      "LayersNotFoundException",
    );
    await expectApiError(
      env.call("GetDownloadUrlForLayer", { repositoryName: "app", layerDigest: "bad" }),
      "InvalidParameterException",
    );
  });
});

describe("BatchDeleteImage", () => {
  it("removes a tag, then the image with its last tag", async () => {
    const img = await env.pushImage("app", { tag: "a" });
    await env.call("PutImage", { repositoryName: "app", imageManifest: img.manifest, imageTag: "b" });
    const first = await env.call("BatchDeleteImage", {
      repositoryName: "app",
      imageIds: [{ imageTag: "a" }],
    });
    expect(first).toEqual({ imageIds: [{ imageDigest: img.digest, imageTag: "a" }], failures: [] });
    expect((await env.call("DescribeImages", { repositoryName: "app" })).imageDetails[0].imageTags).toEqual([
      "b",
    ]);
    await env.call("BatchDeleteImage", { repositoryName: "app", imageIds: [{ imageTag: "b" }] });
    expect((await env.call("DescribeImages", { repositoryName: "app" })).imageDetails).toEqual([]);
  });

  it("removes an image and all its tags by digest", async () => {
    const img = await env.pushImage("app", { tag: "a" });
    await env.call("PutImage", { repositoryName: "app", imageManifest: img.manifest, imageTag: "b" });
    const out = await env.call("BatchDeleteImage", {
      repositoryName: "app",
      imageIds: [{ imageDigest: img.digest }],
    });
    expect(out.imageIds).toHaveLength(2);
    expect((await env.call("ListImages", { repositoryName: "app" })).imageIds).toEqual([]);
  });

  it("refuses to delete a manifest an index references, and reports unknown ids", async () => {
    const child = await env.pushImage("app");
    const index = ociIndex([{ digest: child.digest, size: Buffer.byteLength(child.manifest) }]);
    await env.call("PutImage", { repositoryName: "app", imageManifest: index, imageTag: "multi" });
    const out = await env.call("BatchDeleteImage", {
      repositoryName: "app",
      imageIds: [{ imageDigest: child.digest }, { imageTag: "gone" }, {}],
    });
    expect(out.imageIds).toEqual([]);
    expect(out.failures.map((f: any) => f.failureCode)).toEqual([
      "ImageReferencedByManifestList",
      "ImageNotFound",
      "MissingDigestAndTag",
    ]);
    // Index first, then its child: both go.
    const both = await env.call("BatchDeleteImage", {
      repositoryName: "app",
      imageIds: [{ imageTag: "multi" }, { imageDigest: child.digest }],
    });
    expect(both.failures).toEqual([]);
    expect(both.imageIds).toHaveLength(2);
  });
});

describe("DescribeImages and ListImages", () => {
  it("describes sizes, times, media types and tags", async () => {
    env.now = new Date("2026-03-04T05:06:07.500Z");
    const img = await env.pushImage("app", { tag: "v1", layers: ["12345", "123"], config: '{"a":1}' });
    const out = await env.call("DescribeImages", { repositoryName: "app" });
    expect(out.imageDetails).toEqual([
      {
        registryId: "123456789012",
        repositoryName: "app",
        imageDigest: img.digest,
        imageTags: ["v1"],
        imageSizeInBytes: 8,
        imagePushedAt: Date.parse("2026-03-04T05:06:07.500Z") / 1000,
        imageManifestMediaType: "application/vnd.oci.image.manifest.v1+json",
        artifactMediaType: "application/vnd.oci.image.config.v1+json",
      },
    ]);
    expect(out.nextToken).toBeUndefined();
  });

  it("filters by tag status and refuses paging with ids", async () => {
    const tagged = await env.pushImage("app", { tag: "v1" });
    const loose = await env.pushImage("app");
    const t = await env.call("DescribeImages", { repositoryName: "app", filter: { tagStatus: "TAGGED" } });
    expect(t.imageDetails.map((d: any) => d.imageDigest)).toEqual([tagged.digest]);
    const u = await env.call("DescribeImages", { repositoryName: "app", filter: { tagStatus: "UNTAGGED" } });
    expect(u.imageDetails.map((d: any) => d.imageDigest)).toEqual([loose.digest]);
    await expectApiError(
      env.call("DescribeImages", { repositoryName: "app", filter: { tagStatus: "SOME" } }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("DescribeImages", { repositoryName: "app", imageIds: [{ imageTag: "v1" }], maxResults: 5 }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("DescribeImages", { repositoryName: "app", imageIds: [{ imageTag: "none" }] }),
      "ImageNotFoundException",
    );
  });

  it("pages DescribeImages and ListImages with opaque tokens", async () => {
    const digests: string[] = [];
    for (let i = 0; i < 7; i++) digests.push((await env.pushImage("app", { tag: `t${i}` })).digest);
    const seen: string[] = [];
    let nextToken: string | undefined;
    let pages = 0;
    do {
      const out = await env.call("DescribeImages", { repositoryName: "app", maxResults: 3, nextToken });
      seen.push(...out.imageDetails.map((d: any) => d.imageDigest));
      nextToken = out.nextToken;
      pages++;
    } while (nextToken !== undefined);
    expect(pages).toBe(3);
    expect(seen.sort()).toEqual(digests.sort());

    const listed: string[] = [];
    nextToken = undefined;
    do {
      const out = await env.call("ListImages", { repositoryName: "app", maxResults: 2, nextToken });
      expect(out.imageIds.length).toBeLessThanOrEqual(2);
      listed.push(...out.imageIds.map((i: any) => i.imageTag));
      nextToken = out.nextToken;
    } while (nextToken !== undefined);
    expect(listed.sort()).toEqual(["t0", "t1", "t2", "t3", "t4", "t5", "t6"]);

    const first = await env.call("ListImages", { repositoryName: "app", maxResults: 2 });
    // A token belongs to its operation and repository.
    await expectApiError(
      env.call("DescribeImages", { repositoryName: "app", nextToken: first.nextToken }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("ListImages", { repositoryName: "app", nextToken: "garbage" }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("ListImages", { repositoryName: "app", maxResults: 0 }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("ListImages", { repositoryName: "app", maxResults: 1001 }),
      "InvalidParameterException",
    );
  });

  it("defaults to 100 results a page", async () => {
    const config = await env.pushBlob("app", "{}");
    for (let i = 0; i < 101; i++) {
      const manifest = ociManifest({ digest: config, size: 2 }, [], { annotations: { i: String(i) } });
      await env.call("PutImage", { repositoryName: "app", imageManifest: manifest });
    }
    const out = await env.call("ListImages", { repositoryName: "app" });
    expect(out.imageIds).toHaveLength(100);
    const rest = await env.call("ListImages", { repositoryName: "app", nextToken: out.nextToken });
    expect(rest.imageIds).toHaveLength(1);
    expect(rest.nextToken).toBeUndefined();
  });
});
