/** What the engine tells its caller while it works; the CLI renders these as bars or NDJSON. */
export type TransferEvent =
  | { type: "plan"; images: number; blobs: number; bytes: number }
  | { type: "blob-skipped"; digest: string; size: number; mediaType: string; reason: "exists" | "duplicate" }
  | {
      type: "blob-start";
      id: string;
      digest: string | undefined;
      size: number;
      mediaType: string;
      transform?: string;
    }
  | { type: "blob-progress"; id: string; bytes: number }
  | { type: "blob-retry"; id: string; attempt: number; rolledBack: number; reason: string }
  | { type: "blob-done"; id: string; digest: string; size: number }
  | { type: "manifest-put"; digest: string; mediaType: string; tags: string[] }
  | { type: "notice"; message: string };

export type TransferListener = (event: TransferEvent) => void;
