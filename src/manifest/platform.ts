import { EcrxError } from "../errors.js";
import type { Descriptor, ImageIndex, Platform } from "./types.js";

const ARCH_ALIASES: Record<string, string> = {
  x86_64: "amd64",
  "x86-64": "amd64",
  aarch64: "arm64",
  i386: "386",
};
/** Variants an architecture has when none is written (as containerd's platforms package does). */
const DEFAULT_VARIANT: Record<string, string> = { arm64: "v8", arm: "v7" };
const PART_PATTERN = /^[a-z0-9._-]+$/;

/** Parses `os/arch[/variant]`, e.g. `linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`. */
export function parsePlatform(text: string): Platform {
  const parts = text.toLowerCase().split("/");
  if (parts.length < 2 || parts.length > 3 || !parts.every((p) => PART_PATTERN.test(p))) {
    throw new EcrxError("USAGE", `invalid platform ${JSON.stringify(text)}`, {
      hint: "write os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8",
    });
  }
  const [os, architecture, variant] = parts as [string, string, string?];
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

export function formatPlatform(platform: Platform): string {
  const base = `${platform.os}/${platform.architecture}`;
  return platform.variant ? `${base}/${platform.variant}` : base;
}

/** Canonical spelling: architecture aliases resolved, default variants filled in. */
export function normalizePlatform(platform: Platform): Platform {
  const architecture = ARCH_ALIASES[platform.architecture] ?? platform.architecture;
  const variant = platform.variant || DEFAULT_VARIANT[architecture];
  const normalized: Platform = { ...platform, os: platform.os.toLowerCase(), architecture };
  if (variant) normalized.variant = variant;
  else delete normalized.variant;
  return normalized;
}

/** Whether `candidate` (e.g. a descriptor's platform) runs what `wanted` asks for. */
export function platformMatches(wanted: Platform, candidate: Platform | undefined): boolean {
  if (!candidate) return false;
  const a = normalizePlatform(wanted);
  const b = normalizePlatform(candidate);
  return a.os === b.os && a.architecture === b.architecture && a.variant === b.variant;
}

const NODE_ARCH: Record<string, Platform> = {
  x64: { os: "linux", architecture: "amd64" },
  arm64: { os: "linux", architecture: "arm64", variant: "v8" },
  arm: { os: "linux", architecture: "arm", variant: "v7" },
  ia32: { os: "linux", architecture: "386" },
  ppc64: { os: "linux", architecture: "ppc64le" },
  s390x: { os: "linux", architecture: "s390x" },
  riscv64: { os: "linux", architecture: "riscv64" },
};

/**
 * The platform images are pulled for by default. The OS is always linux: container images for
 * macOS hosts are linux images run in a VM, as docker does.
 */
export function hostPlatform(arch: string = process.arch): Platform {
  const platform = NODE_ARCH[arch];
  if (!platform)
    throw new EcrxError("UNSUPPORTED", `no container platform is known for the host architecture ${arch}`);
  return { ...platform };
}

/**
 * Whether an index entry is an image for some platform rather than an attachment: buildkit stores
 * attestations as manifests with platform unknown/unknown.
 */
function isRunnable(d: Descriptor): boolean {
  return (
    d.platform !== undefined &&
    d.platform.os !== "unknown" &&
    d.annotations?.["vnd.docker.reference.type"] !== "attestation-manifest"
  );
}

/** The platforms an index offers, formatted, in index order. */
export function listPlatforms(index: ImageIndex): string[] {
  return index.manifests.filter(isRunnable).map((d) => formatPlatform(d.platform!));
}

/** The index entry for `wanted`; UNSUPPORTED (listing what there is) when none matches. */
export function selectManifest(index: ImageIndex, wanted: Platform): Descriptor {
  const match = index.manifests.find((d) => isRunnable(d) && platformMatches(wanted, d.platform));
  if (match) return match;
  const available = listPlatforms(index);
  throw new EcrxError(
    "UNSUPPORTED",
    `no image for platform ${formatPlatform(wanted)}; the index has ${available.length ? available.join(", ") : "no platform images"}`,
    { hint: "choose one of the listed platforms with --platform" },
  );
}
