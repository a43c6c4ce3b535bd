/**
 * skopeo (containers/image, Go) against the registry API of `ecrx serve`: copies into it from an
 * OCI layout and back out to an OCI layout and a docker archive, a multi-arch index included,
 * with ECR's Basic credentials, digests identical end to end, and images crossing to the ECR API.
 *
 * skopeo names the registry `127.0.0.1:<port>`: its Go resolver does not resolve `*.localhost`.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { BatchGetImageCommand, CreateRepositoryCommand } from "@aws-sdk/client-ecr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import { ecrClient, pushTestImage } from "../helpers/emulator-clients.js";
import { buildImage, MiB, type BuiltImage } from "../helpers/images.js";
import { useScratch } from "../helpers/scratch.js";
import { requireTool, tool } from "../helpers/tools.js";

const available = requireTool("skopeo");
const scratch = useScratch("skopeo-emulator");

describe.runIf(available)("skopeo against the emulator's registry API", () => {
  let server: RunningServer;
  let host: string;
  let single: BuiltImage;
  let multi: BuiltImage;

  const destination = (): string[] => [
    "--dest-creds",
    `AWS:${server.registryPassword()}`,
    "--dest-tls-verify=false",
  ];
  const source = (): string[] => [
    "--src-creds",
    `AWS:${server.registryPassword()}`,
    "--src-tls-verify=false",
  ];
  const inspectRaw = (reference: string): Promise<string> =>
    tool("skopeo", [
      "inspect",
      "--raw",
      "--creds",
      `AWS:${server.registryPassword()}`,
      "--tls-verify=false",
      reference,
    ]);

  beforeAll(async () => {
    server = await serve({ port: 0 });
    host = `127.0.0.1:${server.port}`;
    for (const repositoryName of ["single", "multi", "pushed"]) {
      await ecrClient(server).send(new CreateRepositoryCommand({ repositoryName }));
    }
    single = await buildImage({
      format: "oci-layout",
      dir: scratch.fresh("single"),
      // Over 5 MiB, so skopeo's streamed PATCH is a large chunk; the small config one goes too.
      layers: [{ size: 7 * MiB, content: "random" }, { size: 64 * 1024 }],
    });
    multi = await buildImage({
      format: "oci-layout",
      dir: scratch.fresh("multi"),
      platforms: ["linux/amd64", "linux/arm64"],
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("copies an OCI layout in and out with the same digests", async () => {
    await tool("skopeo", ["copy", ...destination(), single.reference, `docker://${host}/single:v1`]);
    expect(await inspectRaw(`docker://${host}/single:v1`)).toBe(single.root.bytes.toString());

    const out = scratch.fresh("out");
    await tool("skopeo", ["copy", ...source(), `docker://${host}/single:v1`, `oci:${out}:v1`]);
    const index = JSON.parse(await readFile(join(out, "index.json"), "utf8")) as {
      manifests: { digest: string }[];
    };
    expect(index.manifests[0]?.digest).toBe(single.root.digest);
    for (const layer of single.manifests[0]!.layers) {
      const copied = await readFile(join(out, "blobs", "sha256", layer.digest.slice("sha256:".length)));
      expect(copied.length).toBe(layer.size);
    }
  });

  it("copies a multi-arch index in and out, every manifest by digest", async () => {
    await tool("skopeo", ["copy", "--all", ...destination(), multi.reference, `docker://${host}/multi:v1`]);
    expect(await inspectRaw(`docker://${host}/multi:v1`)).toBe(multi.root.bytes.toString());
    for (const manifest of multi.manifests) {
      expect(await inspectRaw(`docker://${host}/multi@${manifest.digest}`)).toBe(manifest.bytes.toString());
    }
    const out = scratch.fresh("multi-out");
    await tool("skopeo", ["copy", "--all", ...source(), `docker://${host}/multi:v1`, `oci:${out}:v1`]);
    const index = JSON.parse(await readFile(join(out, "index.json"), "utf8")) as {
      manifests: { digest: string }[];
    };
    expect(index.manifests[0]?.digest).toBe(multi.root.digest);
  });

  it("reads through the ECR API what skopeo pushed", async () => {
    const out = await ecrClient(server).send(
      new BatchGetImageCommand({ repositoryName: "multi", imageIds: [{ imageTag: "v1" }] }),
    );
    expect(out.images?.[0]?.imageManifest).toBe(multi.root.bytes.toString());
  });

  it("pulls into a docker archive an image pushed with the ECR API", async () => {
    const pushed = await pushTestImage(ecrClient(server), "pushed", { tag: "v1" });
    const archive = scratch.fresh("image.tar");
    await tool("skopeo", [
      "copy",
      ...source(),
      `docker://${host}/pushed:v1`,
      `docker-archive:${archive}:pushed:v1`,
    ]);
    const inspected = JSON.parse(await tool("skopeo", ["inspect", `docker-archive:${archive}`])) as {
      Layers: string[];
    };
    expect(inspected.Layers).toHaveLength(1);
    expect(await inspectRaw(`docker://${host}/pushed:v1`)).toBe(pushed.manifest);
  });

  it("fails without credentials and with an expired password", async () => {
    await expect(
      tool("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${host}/single:v1`]),
    ).rejects.toThrow(/unauthorized|authentication required|401/i);
    let offsetMs = 0;
    const expiring = await serve({ port: 0, now: () => new Date(Date.now() + offsetMs) });
    try {
      const stale = expiring.registryPassword();
      offsetMs = 13 * 3600 * 1000;
      await expect(
        tool("skopeo", [
          "inspect",
          "--raw",
          "--creds",
          `AWS:${stale}`,
          "--tls-verify=false",
          `docker://127.0.0.1:${expiring.port}/any:v1`,
        ]),
      ).rejects.toThrow(/Your authorization token has expired/);
    } finally {
      await expiring.close();
    }
  });
});
