import { Transform, type TransformCallback } from "node:stream";
import { EcrxError } from "../errors.js";

/** How much decompression expands at most: real layers stay far below. */
export const MAX_EXPANSION_RATIO = 200;

/**
 * The most bytes that `compressedBytes` may decompress to before the input is taken for a
 * decompression bomb: 200 times the compressed size, and never less than 1 GiB (a layer of zeroed
 * files compresses about 1000:1, but not by the gigabyte). Work stays bounded: a 10 MB bomb is
 * stopped after 2 GB, not after the terabytes it claims.
 */
export function decompressionLimit(compressedBytes: number): number {
  return Math.max(1024 ** 3, compressedBytes * MAX_EXPANSION_RATIO);
}

/** Fails the stream as soon as more than `limit` bytes have passed. */
export class ExpansionLimit extends Transform {
  private passed = 0;

  constructor(
    private readonly limit: number,
    private readonly what: string,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.passed += chunk.length;
    if (this.passed > this.limit) {
      callback(
        new EcrxError(
          "INVALID_INPUT",
          `${this.what} decompresses to more than ${this.limit} bytes (${MAX_EXPANSION_RATIO}x its size): refused as a decompression bomb`,
          { hint: "if it is genuine, push it with --compression keep, or decompress it yourself first" },
        ),
      );
      return;
    }
    callback(null, chunk);
  }
}
