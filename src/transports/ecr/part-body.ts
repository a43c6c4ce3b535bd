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
    if (blob === undefined || !HttpRequest.isInstance(request)) return next(args);
    // The SDK's codec hands over the JSON as a string or as UTF-8 bytes, depending on its version.
    const body: unknown = request.body;
    const json =
      typeof body === "string"
        ? Buffer.from(body)
        : body instanceof Uint8Array
          ? Buffer.from(body.buffer, body.byteOffset, body.byteLength)
          : undefined;
    const at = json?.indexOf(EMPTY_BLOB_MEMBER) ?? -1;
    if (json === undefined || at < 0)
      throw new Error("UploadLayerPart body has no empty layerPartBlob member to fill");
    // Split between the two quotes of the empty string.
    const split = at + EMPTY_BLOB_MEMBER.length - 1;
    const base64 = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength).toString("base64");
    const filled = Buffer.allocUnsafe(json.length + base64.length);
    json.copy(filled, 0, 0, split);
    filled.write(base64, split, "latin1");
    json.copy(filled, split + base64.length, split);
    request.body = filled;
    request.headers["content-length"] = String(filled.length);
    return next(args);
  };

/** Install with `client.middlewareStack.use(layerPartBodyPlugin)`. */
export const layerPartBodyPlugin: Pluggable<object, MetadataBearer> = {
  applyToStack(stack) {
    stack.add(stashBlob, { step: "serialize", priority: "high", name: "ecrxStashLayerPartBlob" });
    stack.add(spliceBlob, { step: "build", priority: "low", name: "ecrxSpliceLayerPartBlob" });
  },
};
