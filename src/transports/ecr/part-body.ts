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

/**
 * A cheap request body for UploadLayerPart.
 *
 * The SDK's JSON serializer base64-encodes `layerPartBlob` into a string and then runs
 * JSON.stringify over a ~14 MB string for a 10 MiB part: that scan is the measured bottleneck of
 * a push (about 440 MB/s against 5 GB/s for base64 itself). These two middlewares let the SDK
 * serialize the request with an empty blob, then splice the base64 of the real blob into the body
 * as one Buffer: prefix + base64 + suffix. Base64 needs no JSON escaping, so the result is the
 * same JSON the SDK would have produced. Everything else (signing, retries, error parsing) stays
 * the SDK's own.
 */
const STASH = Symbol("ecrx.layerPartBlob");
const EMPTY_BLOB_MEMBER = '"layerPartBlob":""';

type StashContext = HandlerExecutionContext & { [STASH]?: Uint8Array };

function isUploadLayerPart(context: HandlerExecutionContext): boolean {
  return context.commandName === "UploadLayerPartCommand";
}

const stashBlob: SerializeMiddleware<object, MetadataBearer> =
  (next: SerializeHandler<object, MetadataBearer>, context: StashContext) =>
  async (args: SerializeHandlerArguments<object>) => {
    const input = args.input as { layerPartBlob?: Uint8Array };
    if (!isUploadLayerPart(context) || !(input.layerPartBlob instanceof Uint8Array)) return next(args);
    context[STASH] = input.layerPartBlob;
    return next({ ...args, input: { ...input, layerPartBlob: new Uint8Array(0) } });
  };

const spliceBlob: BuildMiddleware<object, MetadataBearer> =
  (next: BuildHandler<object, MetadataBearer>, context: StashContext) =>
  async (args: BuildHandlerArguments<object>) => {
    const blob = context[STASH];
    const request = args.request;
    if (blob === undefined || !HttpRequest.isInstance(request) || typeof request.body !== "string") {
      return next(args);
    }
    const json = request.body;
    const at = json.indexOf(EMPTY_BLOB_MEMBER);
    if (at < 0) throw new Error("UploadLayerPart body has no empty layerPartBlob member to fill");
    const prefix = json.slice(0, at + EMPTY_BLOB_MEMBER.length - 1);
    const suffix = json.slice(at + EMPTY_BLOB_MEMBER.length - 1);
    const base64Length = 4 * Math.ceil(blob.byteLength / 3);
    const body = Buffer.allocUnsafe(prefix.length + base64Length + suffix.length);
    // The JSON around the blob is ASCII (names, numbers, a UUID), so one byte per character.
    let offset = body.write(prefix, 0, "latin1");
    const data = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
    offset += body.write(data.toString("base64"), offset, "latin1");
    body.write(suffix, offset, "latin1");
    request.body = body;
    request.headers["content-length"] = String(body.length);
    return next(args);
  };

/** Install with `client.middlewareStack.use(layerPartBodyPlugin)`. */
export const layerPartBodyPlugin: Pluggable<object, MetadataBearer> = {
  applyToStack(stack) {
    stack.add(stashBlob, { step: "serialize", priority: "high", name: "ecrxStashLayerPartBlob" });
    stack.add(spliceBlob, { step: "build", priority: "low", name: "ecrxSpliceLayerPartBlob" });
  },
};
