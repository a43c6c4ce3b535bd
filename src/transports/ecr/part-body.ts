import type {
  BuildHandler,
  BuildHandlerArguments,
  BuildMiddleware,
  HandlerExecutionContext,
  MetadataBearer,
  Pluggable,
  SerializeHandler,
  SerializeHandlerArguments,
  SerializeMiddleware,
} from "@smithy/types";
import { HttpRequest } from "@smithy/protocol-http";
import { sha256HexOffThread } from "../../util/sha256.js";

/**
 * UploadLayerPart request bodies built by ecrx, ready before they are needed.
 *
 * The SDK's JSON serializer base64-encodes `layerPartBlob` into a string and then scans a ~14 MB
 * string with JSON.stringify for each 10 MiB part (about 440 MB/s against 5 GB/s for base64
 * itself), and the signer then hashes the body: all of it on the critical path, after the
 * previous part's answer. Here the body is built as one Buffer (JSON prefix + base64 + suffix;
 * base64 needs no escaping) and hashed, on the thread pool, while the previous part is still in
 * flight (hashed on this thread, the 7 ms would stall the socket that sends that part); a middleware
 * hands it to the SDK in place of its own, with `x-amz-content-sha256` so the signer uses the hash
 * instead of computing it again. Signing, retries and error parsing stay the SDK's own.
 */
export interface LayerPartMembers {
  registryId?: string | undefined;
  repositoryName: string;
  uploadId: string;
  partFirstByte: number;
  partLastByte: number;
}

export interface PreparedPartBody {
  body: Buffer;
  sha256: string;
  /** Where the blob's base64 starts in `body`, and how many bytes it decodes to. */
  blobStart: number;
  blobSize: number;
}

const PREPARED = Symbol("ecrx.preparedLayerPartBody");
type WithPrepared = { [PREPARED]?: PreparedPartBody };
type StashContext = HandlerExecutionContext & { [PREPARED]?: PreparedPartBody };

/** Base64 is written in slices this long: short-lived small strings instead of one of 14 MB. */
const BASE64_SLICE = 48 * 1024;

/**
 * The JSON body of UploadLayerPart for these members and bytes, and its SHA-256. `allocate` gives
 * the buffer (a pool's); by default a new one.
 */
export async function prepareLayerPartBody(
  members: LayerPartMembers,
  blob: Uint8Array,
  allocate: (size: number) => Buffer = (size) => Buffer.allocUnsafe(size),
): Promise<PreparedPartBody> {
  const { registryId, ...rest } = members;
  const head = JSON.stringify(registryId === undefined ? rest : { registryId, ...rest });
  const prefix = `${head.slice(0, -1)},"layerPartBlob":"`;
  const suffix = '"}';
  const data = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  const body = allocate(prefix.length + 4 * Math.ceil(data.length / 3) + suffix.length);
  // The JSON around the blob is ASCII (names, numbers, a UUID): one byte per character.
  let offset = body.write(prefix, 0, "latin1");
  for (let start = 0; start < data.length; start += BASE64_SLICE) {
    offset += body.write(
      data.toString("base64", start, Math.min(start + BASE64_SLICE, data.length)),
      offset,
      "latin1",
    );
  }
  body.write(suffix, offset, "latin1");
  return { body, sha256: await sha256HexOffThread(body), blobStart: prefix.length, blobSize: data.length };
}

/**
 * The part's bytes from `from` on, decoded out of its body: a part resumed after a lost answer
 * is sent again from these, so that a prepared part need not keep its 10 MiB of bytes besides
 * the 14 MB body that carries them.
 */
export function partBytesFrom(prepared: PreparedPartBody, from: number): Buffer {
  // Base64 encodes each 3 bytes as 4 characters: decode from the group that holds `from`.
  const group = Math.floor(from / 3);
  const start = prepared.blobStart + group * 4;
  const end = prepared.blobStart + 4 * Math.ceil(prepared.blobSize / 3);
  const bytes = Buffer.from(prepared.body.toString("latin1", start, end), "base64");
  return bytes.subarray(from - group * 3);
}

/** Marks a command input with its prepared body (the input must carry the same members). */
export function withPreparedBody<T extends object>(input: T, prepared: PreparedPartBody): T {
  Object.defineProperty(input, PREPARED, { value: prepared, enumerable: false });
  return input;
}

function isUploadLayerPart(context: HandlerExecutionContext): boolean {
  return context.commandName === "UploadLayerPartCommand";
}

const takeBlob: SerializeMiddleware<object, MetadataBearer> =
  (next: SerializeHandler<object, MetadataBearer>, context: StashContext) =>
  async (args: SerializeHandlerArguments<object>) => {
    const input = args.input as LayerPartMembers & { layerPartBlob?: Uint8Array } & WithPrepared;
    if (!isUploadLayerPart(context) || !(input.layerPartBlob instanceof Uint8Array)) return next(args);
    context[PREPARED] = input[PREPARED] ?? (await prepareLayerPartBody(input, input.layerPartBlob));
    // The SDK serializes an empty blob; its body is replaced at the build step.
    return next({ ...args, input: { ...input, layerPartBlob: new Uint8Array(0) } });
  };

const putBody: BuildMiddleware<object, MetadataBearer> =
  (next: BuildHandler<object, MetadataBearer>, context: StashContext) =>
  async (args: BuildHandlerArguments<object>) => {
    const prepared = context[PREPARED];
    const request = args.request;
    if (prepared === undefined || !HttpRequest.isInstance(request)) return next(args);
    request.body = prepared.body;
    request.headers["content-length"] = String(prepared.body.length);
    request.headers["x-amz-content-sha256"] = prepared.sha256;
    return next(args);
  };

/** Install with `client.middlewareStack.use(layerPartBodyPlugin)`. */
export const layerPartBodyPlugin: Pluggable<object, MetadataBearer> = {
  applyToStack(stack) {
    stack.add(takeBlob, { step: "serialize", priority: "high", name: "ecrxTakeLayerPartBlob" });
    stack.add(putBody, { step: "build", priority: "low", name: "ecrxPutLayerPartBody" });
  },
};
