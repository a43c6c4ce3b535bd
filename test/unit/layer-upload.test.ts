import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { prepareLayerPart, type EcrApi, type PreparedLayerPart } from "../../src/transports/ecr/api.js";
import { EcrDestination } from "../../src/transports/ecr/destination.js";
import { ReadAheadBudget, uploadLayer } from "../../src/transports/ecr/layer-upload.js";
import { partBytesFrom, prepareLayerPartBody } from "../../src/transports/ecr/part-body.js";

const MiB = 1024 * 1024;

/**
 * An EcrApi that records, in order, when each part was prepared and when each send started and
 * ended, and checks the parts arrive consecutively, as ECR requires.
 */
function recordingApi() {
  const events: string[] = [];
  const received: Buffer[] = [];
  /** What each prepared part carries, by its first byte. */
  const sent = new Map<number, Buffer>();
  let lastByte = -1;
  const api: EcrApi = {
    service: "ecr",
    repositoryName: "repo",
    limits: { maxParts: 4200, maxLayerBytes: 52_000 * MiB },
    describeRepository: () => Promise.resolve({ repositoryName: "repo", imageTagMutability: "MUTABLE" }),
    createRepository: () => Promise.resolve(),
    checkLayers: () => Promise.resolve([]),
    initiateLayerUpload: () => {
      // Each upload starts afresh at byte 0.
      lastByte = -1;
      received.length = 0;
      return Promise.resolve({ uploadId: "u1", partSize: undefined });
    },
    async prepareLayerPart(uploadId, firstByte, blob): Promise<PreparedLayerPart> {
      events.push(`prepare ${firstByte / (5 * MiB)}`);
      // A copy, as a body would be: the part buffer goes back to the pool once prepared.
      sent.set(firstByte, Buffer.from(blob));
      const body = { body: Buffer.alloc(0), sha256: "", blobStart: 0, blobSize: blob.length };
      return { uploadId, firstByte, lastByte: firstByte + blob.length - 1, body };
    },
    async uploadLayerPart(part) {
      const index = part.firstByte / (5 * MiB);
      events.push(`send ${index}`);
      expect(part.firstByte).toBe(lastByte + 1);
      // Long enough for every preparation the read-ahead allows to run meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 20));
      received.push(sent.get(part.firstByte)!);
      lastByte = part.lastByte;
      events.push(`sent ${index}`);
      return part.lastByte;
    },
    completeLayerUpload: () =>
      Promise.resolve(`sha256:${createHash("sha256").update(Buffer.concat(received)).digest("hex")}`),
    putImage: () => Promise.resolve(),
    digestOfTag: () => Promise.resolve(undefined),
    close: () => undefined,
  };
  return { api, events, received };
}

async function upload(readAhead: number | undefined, bytes: Buffer) {
  const recorder = recordingApi();
  const result = await uploadLayer(recorder.api, Readable.from([bytes]), {
    digest: undefined,
    sizeHint: bytes.length,
    partSize: 5 * MiB,
    readAhead,
    progress: () => undefined,
  });
  return { ...recorder, result };
}

/** How many parts beyond part `index` had been prepared by the time it was acknowledged. */
function preparedAheadAt(events: string[], index: number): number {
  const at = events.indexOf(`sent ${index}`);
  const prepared = events.slice(0, at).filter((e) => e.startsWith("prepare")).length;
  return prepared - (index + 1);
}

describe("uploadLayer read-ahead", () => {
  const bytes = randomBytes(5 * 5 * MiB + 123);
  const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

  it("by default prepares exactly one part ahead of the one in flight", async () => {
    const { events, received, result } = await upload(undefined, bytes);
    expect(result).toEqual({ digest, size: bytes.length });
    expect(Buffer.concat(received).equals(bytes)).toBe(true);
    // While part 1 is on the wire, part 2 is being prepared, never part 3.
    expect(events.slice(events.indexOf("send 1"), events.indexOf("sent 1"))).toEqual(["send 1", "prepare 2"]);
  });

  it("with 0 prepares each part only after the one before was acknowledged", async () => {
    const { events, received, result } = await upload(0, bytes);
    expect(result.digest).toBe(digest);
    expect(Buffer.concat(received).equals(bytes)).toBe(true);
    for (let i = 0; i < 6; i++) expect(preparedAheadAt(events, i)).toBe(0);
    for (let i = 1; i < 6; i++) {
      expect(events.indexOf(`prepare ${i}`)).toBeGreaterThan(events.indexOf(`sent ${i - 1}`));
    }
  });

  it("with 3 keeps three parts prepared while one is in flight, and sends them in order", async () => {
    const { events, received, result } = await upload(3, bytes);
    expect(result.digest).toBe(digest);
    expect(Buffer.concat(received).equals(bytes)).toBe(true);
    expect(preparedAheadAt(events, 0)).toBe(3);
    expect(preparedAheadAt(events, 1)).toBe(3);
    expect(events.filter((e) => e.startsWith("prepare"))).toHaveLength(6);
  });

  it("refuses a read-ahead outside 0..4 before starting an upload", async () => {
    await expect(upload(5, bytes)).rejects.toMatchObject({ code: "USAGE", message: /read-ahead 5/ });
    await expect(upload(1.5, bytes)).rejects.toMatchObject({ code: "USAGE" });
  });
});

describe("uploadLayer preparation across uploads", () => {
  it("prepares the parts of concurrent uploads two at a time, so that the first are ready first", async () => {
    let preparing = 0;
    let most = 0;
    const order: number[] = [];
    const uploads = Array.from({ length: 6 }, (_, blob) => {
      const { api } = recordingApi();
      // A preparation that takes a while (as hashing and base64 do), counted while it runs.
      const prepare = api.prepareLayerPart.bind(api);
      api.prepareLayerPart = async (uploadId, firstByte, bytes, allocate) => {
        preparing++;
        most = Math.max(most, preparing);
        await new Promise((resolve) => setTimeout(resolve, 5));
        const part = await prepare(uploadId, firstByte, bytes, allocate);
        preparing--;
        order.push(blob);
        return part;
      };
      const bytes = randomBytes(5 * MiB);
      return uploadLayer(api, Readable.from([bytes]), {
        digest: undefined,
        sizeHint: bytes.length,
        partSize: 5 * MiB,
        progress: () => undefined,
      });
    });
    await Promise.all(uploads);
    expect(most).toBe(2);
    // In the order the uploads asked: the first blobs' parts are not held back by the later ones'.
    expect(order).toEqual([0, 1, 2, 3, 4, 5]);
  });
});

describe("uploadLayer read-ahead across uploads", () => {
  /** A budget that counts its shares out and back. */
  class CountedBudget extends ReadAheadBudget {
    out = 0;
    most = 0;
    override take(): boolean {
      const taken = super.take();
      if (taken) this.most = Math.max(this.most, ++this.out);
      return taken;
    }
    override give(): void {
      super.give();
      this.out--;
    }
  }

  it("lets six uploads at once read ahead two parts in all, every share given back", async () => {
    const budget = new CountedBudget(2);
    const recorders = Array.from({ length: 6 }, () => recordingApi());
    const blobs = recorders.map(() => randomBytes(4 * 5 * MiB));
    await Promise.all(
      recorders.map(({ api }, i) =>
        uploadLayer(api, Readable.from([blobs[i]!]), {
          digest: undefined,
          sizeHint: blobs[i]!.length,
          partSize: 5 * MiB,
          readAheadBudget: budget,
          progress: () => undefined,
        }),
      ),
    );
    recorders.forEach(({ received }, i) => expect(Buffer.concat(received).equals(blobs[i]!)).toBe(true));
    expect(budget.most).toBe(2);
    expect(budget.out).toBe(0);
    // Some uploads did prepare parts ahead of the one in flight, with the shares they were given.
    const ahead = recorders.flatMap(({ events }) => [0, 1, 2].map((i) => preparedAheadAt(events, i)));
    expect(ahead.filter((n) => n > 0).length).toBeGreaterThan(0);
  });

  it("gives its shares back when an upload fails", async () => {
    const budget = new CountedBudget(2);
    const { api } = recordingApi();
    const send = api.uploadLayerPart.bind(api);
    api.uploadLayerPart = async (part) => {
      if (part.firstByte > 0) throw Object.assign(new Error("refused"), { name: "ServerException" });
      return send(part);
    };
    const bytes = randomBytes(3 * 5 * MiB);
    await expect(
      uploadLayer(api, Readable.from([bytes]), {
        digest: undefined,
        sizeHint: bytes.length,
        partSize: 5 * MiB,
        readAheadBudget: budget,
        progress: () => undefined,
      }),
    ).rejects.toThrow(/refused/);
    expect(budget.most).toBe(1);
    expect(budget.out).toBe(0);
  });
});

describe("uploadLayer buffers", () => {
  it("hands a finished upload's part buffers to the next blob of the same push (EcrDestination)", async () => {
    const { api } = recordingApi();
    const destination = new EcrDestination(api, "repo");
    const seen: Set<ArrayBufferLike>[] = [];
    const prepare = api.prepareLayerPart.bind(api);
    api.prepareLayerPart = (uploadId, firstByte, bytes, allocate) => {
      seen.at(-1)!.add(bytes.buffer);
      return prepare(uploadId, firstByte, bytes, allocate);
    };
    for (let blob = 0; blob < 2; blob++) {
      seen.push(new Set());
      const bytes = randomBytes(3 * 5 * MiB);
      // Chunks of 1 MiB: each part is filled in a pool's buffer (a chunk of one whole part would go as it is).
      const chunks = Array.from({ length: 15 }, (_, i) => bytes.subarray(i * MiB, (i + 1) * MiB));
      const blobToPut = {
        mediaType: "application/octet-stream",
        digest: undefined,
        size: bytes.length,
        sizeIsExact: true,
      };
      await destination.putBlob(blobToPut, Readable.from(chunks), () => undefined);
    }
    const [first, second] = seen as [Set<ArrayBufferLike>, Set<ArrayBufferLike>];
    expect(first.size).toBeGreaterThan(0);
    // Every part buffer of the second blob is one the first allocated: nothing new was faulted in.
    for (const buffer of second) expect(first.has(buffer)).toBe(true);
  });
});

describe("partBytesFrom", () => {
  it("decodes a part's bytes from any offset out of its request body", async () => {
    for (const size of [1, 2, 3, 4, 5, 1000, 5 * MiB + 1]) {
      const bytes = randomBytes(size);
      const members = { repositoryName: "repo", uploadId: "u", partFirstByte: 0, partLastByte: size - 1 };
      const prepared = await prepareLayerPartBody(members, bytes);
      for (const from of new Set([0, 1, 2, 3, Math.floor(size / 2), size - 2, size - 1])) {
        if (from < 0 || from >= size) continue;
        expect(partBytesFrom(prepared, from).equals(bytes.subarray(from))).toBe(true);
      }
    }
  });
});

describe("uploadLayer resume", () => {
  it("resumes inside a part from the byte the registry reports, with the bytes decoded from the part's body", async () => {
    const { api } = recordingApi();
    const bytes = randomBytes(3 * 5 * MiB);
    // The registry's view: bytes as decoded from the bodies it received, in order.
    const registry: Buffer[] = [];
    let failed = false;
    api.prepareLayerPart = (uploadId, firstByte, blob, allocate) =>
      prepareLayerPart({ repositoryName: "repo" }, uploadId, firstByte, blob, allocate);
    api.uploadLayerPart = async (part) => {
      const received = registry.reduce((n, b) => n + b.length, 0);
      expect(part.firstByte).toBe(received);
      const partBytes = partBytesFrom(part.body, 0);
      if (part.firstByte === 5 * MiB && !failed) {
        // It kept 12346 bytes of the second part (not a whole base64 group) and lost the rest, and says so.
        failed = true;
        registry.push(partBytes.subarray(0, 12346));
        throw Object.assign(new Error("part lost"), {
          name: "InvalidLayerPartException",
          lastValidByteReceived: 5 * MiB + 12346 - 1,
        });
      }
      registry.push(partBytes);
      return part.lastByte;
    };
    api.completeLayerUpload = () =>
      Promise.resolve(`sha256:${createHash("sha256").update(Buffer.concat(registry)).digest("hex")}`);
    const result = await uploadLayer(api, Readable.from([bytes]), {
      digest: undefined,
      sizeHint: bytes.length,
      partSize: 5 * MiB,
      progress: () => undefined,
    });
    expect(failed).toBe(true);
    expect(Buffer.concat(registry).equals(bytes)).toBe(true);
    expect(result.digest).toBe(`sha256:${createHash("sha256").update(bytes).digest("hex")}`);
  });
});
