import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { completionScript } from "../../src/cli/completion.js";
import { colorEnabled, paint } from "../../src/cli/style.js";
import {
  abbreviateDigest,
  formatFields,
  formatTable,
  formatTime,
  shortMediaType,
} from "../../src/cli/tables.js";
import { sortNewestFirst, type ImageSummary } from "../../src/list.js";
import { parseEcrRegistry } from "../../src/reference/reference.js";

const tty = { isTTY: true };
const pipe = { isTTY: false };

describe("formatTable", () => {
  it("pads columns to their widest cell, leaves no trailing blanks", () => {
    expect(
      formatTable(
        ["A", "LONGER", "C"],
        [
          ["xyz", "1", ""],
          ["q", "22", "last"],
        ],
      ),
    ).toBe(["A    LONGER  C", "xyz  1", "q    22      last"].join("\n"));
  });

  it("does not count color codes as width", () => {
    const green = paint("green", "ok", tty, { FORCE_COLOR: "1" });
    expect(green).not.toBe("ok");
    expect(
      formatTable(
        ["S", "N"],
        [
          [green, "1"],
          ["fail", "2"],
        ],
      ).split("\n")[1],
    ).toBe(`${green}    1`);
  });
});

describe("formatFields", () => {
  it("aligns keys and indents further values under the first", () => {
    expect(
      formatFields([
        ["a", "1"],
        ["env", ["X=1", "Y=2"]],
        ["empty", ""],
      ]),
    ).toBe(["a      1", "env    X=1", "       Y=2", "empty"].join("\n"));
  });
});

describe("short forms", () => {
  it("names manifest types, times and digests compactly", () => {
    expect(shortMediaType("application/vnd.oci.image.index.v1+json")).toBe("oci index");
    expect(shortMediaType("application/vnd.docker.distribution.manifest.v2+json")).toBe("docker image");
    expect(shortMediaType("application/x-other")).toBe("application/x-other");
    expect(shortMediaType(undefined)).toBe("-");
    expect(formatTime("2025-03-01T14:02:11.000Z")).toBe("2025-03-01 14:02:11Z");
    expect(formatTime(undefined)).toBe("-");
    expect(abbreviateDigest(`sha256:${"ab".repeat(32)}`)).toBe("sha256:abababababab");
  });
});

describe("colorEnabled", () => {
  it("follows NO_COLOR, then FORCE_COLOR, then the terminal and TERM", () => {
    expect(colorEnabled(tty, {})).toBe(true);
    expect(colorEnabled(pipe, {})).toBe(false);
    expect(colorEnabled(tty, { TERM: "dumb" })).toBe(false);
    expect(colorEnabled(tty, { NO_COLOR: "1" })).toBe(false);
    expect(colorEnabled(tty, { NO_COLOR: "" })).toBe(true);
    expect(colorEnabled(pipe, { FORCE_COLOR: "1" })).toBe(true);
    expect(colorEnabled(tty, { FORCE_COLOR: "0" })).toBe(false);
    expect(colorEnabled(pipe, { FORCE_COLOR: "1", NO_COLOR: "1" })).toBe(false);
  });

  it("paints with SGR codes only when enabled", () => {
    expect(paint("red", "x", tty, {})).toBe("\u001b[31mx\u001b[39m");
    expect(paint("red", "x", pipe, {})).toBe("x");
  });
});

describe("sortNewestFirst", () => {
  it("orders by push time, newest first, then by digest", () => {
    const image = (digest: string, pushedAt: string | undefined): ImageSummary => ({
      digest,
      tags: [],
      size: 1,
      pushedAt,
      mediaType: undefined,
    });
    const sorted = sortNewestFirst([
      image("sha256:b", "2025-01-01T00:00:00.000Z"),
      image("sha256:c", "2025-02-01T00:00:00.000Z"),
      image("sha256:a", "2025-01-01T00:00:00.000Z"),
      image("sha256:d", undefined),
    ]);
    expect(sorted.map((i) => i.digest)).toEqual(["sha256:c", "sha256:a", "sha256:b", "sha256:d"]);
  });
});

describe("parseEcrRegistry", () => {
  it("reads registry hosts alone, with or without a scheme or port", () => {
    expect(parseEcrRegistry("123456789012.dkr.ecr.eu-west-1.amazonaws.com")).toMatchObject({
      registry: "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
      registryId: "123456789012",
      region: "eu-west-1",
    });
    expect(parseEcrRegistry("https://000000000000.dkr.ecr.us-east-1.localhost:5000/")).toMatchObject({
      registry: "000000000000.dkr.ecr.us-east-1.localhost:5000",
      port: 5000,
    });
    expect(parseEcrRegistry("123456789012.dkr.ecr.eu-west-1.amazonaws.com/app")).toBeUndefined();
    expect(parseEcrRegistry("ghcr.io")).toBeUndefined();
  });
});

describe("completionScript", () => {
  const program = new Command("ecrx").option("--debug", "debug");
  program
    .command("push")
    .summary("push [it]: now")
    .option("--compression <mode>", "how", "gzip")
    .option("-q, --quiet", "quiet's");
  program.command("serve").option("--data <dir>", "where");

  it("offers each command's options and values in every shell, quoting descriptions", () => {
    const bash = completionScript(program, "bash");
    expect(bash).toContain("opts='--compression -q --quiet -h --help'");
    expect(bash).toContain("complete -o default -F _ecrx ecrx");
    const zsh = completionScript(program, "zsh");
    expect(zsh).toContain("'push:push \\[it\\]\\: now'");
    expect(zsh).toContain("'(-q --quiet)'{-q,--quiet}'[quiet'\\''s]'");
    const fish = completionScript(program, "fish");
    expect(fish).toContain(
      "complete -c ecrx -n '__fish_seen_subcommand_from push' -s q -l quiet -d 'quiet\\'s'",
    );
    expect(fish).toContain("-F -a 'docker-archive: oci: oci-archive: docker://'");
    expect(fish).toContain(
      "complete -c ecrx -n '__fish_seen_subcommand_from serve' -l data -r -F -d 'where'",
    );
  });
});
