import { webcrypto } from "node:crypto";

/**
 * SHA-256 of `bytes` as lower-case hex, computed on libuv's thread pool (WebCrypto's digest)
 * instead of this thread. For the SigV4 hash of a ~14 MB UploadLayerPart body, about 7 ms here:
 * off the event loop the client keeps feeding the socket while it hashes, and the server decodes
 * the body's base64 while the hash runs. `bytes` must not change until the promise settles.
 */
export async function sha256HexOffThread(bytes: Uint8Array): Promise<string> {
  const digest = await webcrypto.subtle.digest("SHA-256", bytes);
  return Buffer.from(digest).toString("hex");
}
