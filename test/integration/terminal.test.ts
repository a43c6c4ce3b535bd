/**
 * `ecrx push` on a real terminal: tmux gives it a pseudo-terminal of 120x30, and the pane is
 * captured while it runs and after it ends. The bars must render (bar, bytes, MB/s, blob lines)
 * and go away cleanly: the summary line last, the cursor shown again, no bar left on the screen.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import { CLI_MAIN, ensureBuilt } from "../helpers/cli.js";
import { buildImage, MiB, type BuiltImage } from "../helpers/images.js";
import { useScratch } from "../helpers/scratch.js";
import { requireTool } from "../helpers/tools.js";

const run = promisify(execFile);
const hasTmux = requireTool("tmux");
const scratch = useScratch("terminal");
let server: RunningServer;
let image: BuiltImage;
const session = `ecrx-terminal-${process.pid}`;
const BAR = /[█░]{8,}/;

async function tmux(...args: string[]): Promise<string> {
  return (await run("tmux", args)).stdout;
}

const shellQuote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;

describe.skipIf(!hasTmux)("ecrx push on a terminal", () => {
  beforeAll(async () => {
    ensureBuilt();
    // Slow parts keep the bars on the screen long enough to be captured several times.
    server = await serve({ port: 0, faults: "UploadLayerPart:latency=150", faultSeed: 1 });
    image = await buildImage({
      format: "docker-archive-classic",
      dir: scratch.fresh("image"),
      seed: "terminal",
      layers: [
        { size: 12 * MiB, content: "random" },
        { size: 6 * MiB, content: "random" },
      ],
    });
  }, 120_000);

  afterAll(async () => {
    await tmux("kill-session", "-t", session).catch(() => undefined);
    await server?.close();
  });

  it("renders bars with MB/s while it runs and ends with the summary, cursor shown, no bar left", async () => {
    const home = scratch.fresh("home");
    const env = {
      HOME: home,
      ECRX_CACHE_DIR: join(home, "cache"),
      AWS_ACCESS_KEY_ID: server.env.AWS_ACCESS_KEY_ID!,
      AWS_SECRET_ACCESS_KEY: server.env.AWS_SECRET_ACCESS_KEY!,
      AWS_CONFIG_FILE: join(home, "none"),
      AWS_SHARED_CREDENTIALS_FILE: join(home, "none"),
      TERM: "xterm-256color",
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    };
    const command = [
      "env",
      ...Object.entries(env).map(([k, v]) => shellQuote(`${k}=${v}`)),
      shellQuote(process.execPath),
      shellQuote(CLI_MAIN),
      "push",
      shellQuote(image.reference),
      shellQuote(`${server.registryHost}/terminal/app:1`),
      "--create-repo",
      "--part-size",
      "5MiB",
      "; echo EXIT=$?; sleep 30",
    ].join(" ");
    await tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "30", command);

    const frames: string[] = [];
    const deadline = Date.now() + 60_000;
    let last = "";
    while (Date.now() < deadline) {
      // -J joins lines the terminal wrapped, such as the long summary.
      last = await tmux("capture-pane", "-p", "-J", "-t", session);
      frames.push(last);
      if (/^EXIT=\d+$/m.test(last)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(last, frames.join("\n-----\n")).toMatch(/^EXIT=0$/m);

    // While it ran: the image's bar and a blob's bar, with bytes, MB/s and the blob lines.
    const live = frames.filter((f) => BAR.test(f));
    expect(live.length, "no frame showed a bar").toBeGreaterThan(0);
    expect(live.some((f) => /^push\s+[█░]+\s+[\d.]+ MiB\/18\.0 MiB\s+[\d.]+ MB\/s/m.test(f))).toBe(true);
    expect(live.some((f) => /^[0-9a-f]{12}\s+[█░]+\s+[\d.]+ (MiB|KiB)\/[\d.]+ MiB/m.test(f))).toBe(true);

    // At the end: every blob's line, the summary and the reference, then nothing of the bars.
    const lines = last.split("\n").filter((l) => l.trim() !== "");
    expect(lines.filter((l) => /^[0-9a-f]{12}: sent /.test(l))).toHaveLength(3);
    const summary = lines.findIndex((l) => l.startsWith("pushed "));
    expect(summary).toBeGreaterThan(-1);
    expect(lines[summary]).toContain("3 blob(s) sent");
    expect(lines.at(-1)).toBe("EXIT=0");
    expect(last).not.toMatch(BAR);
    expect(last).not.toMatch(/ETA/);
    // The bars hid the cursor while drawing; it must be visible again.
    expect((await tmux("display-message", "-p", "-t", session, "#{cursor_flag}")).trim()).toBe("1");
  });
});
