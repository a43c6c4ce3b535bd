import { open, type FileHandle } from "node:fs/promises";
import { posix } from "node:path";
import { EcrxError } from "../errors.js";

const BLOCK = 512;
const UNSAFE = "the archive is unsafe; re-export it";

export type TarMemberType = "file" | "directory" | "symlink" | "hardlink" | "other";

export interface TarMember {
  /** Normalised: no leading `./`, no trailing `/`. */
  name: string;
  type: TarMemberType;
  /** Byte offset of the member's data in the archive. */
  offset: number;
  size: number;
  /** Target of a symlink or hardlink, as written. */
  linkName?: string;
}

/**
 * The members of a tar archive, found by reading only the headers: each member's data is then
 * served straight from the archive file by offset.
 */
export interface TarIndex {
  path: string;
  members: Map<string, TarMember>;
}

/**
 * Indexes a tar archive by scanning its headers (ustar, pax and GNU long names). Rejects what is
 * not a tar, truncated archives, absolute or `..` member names, and names that occur twice: docker
 * load would take the last copy and other tools the first, so such an archive means two things.
 */
export async function indexTar(path: string): Promise<TarIndex> {
  const handle = await open(path, "r");
  try {
    const { size: fileSize } = await handle.stat();
    const members = new Map<string, TarMember>();
    const header = Buffer.alloc(BLOCK);
    let offset = 0;
    let pending: { path?: string; linkpath?: string; size?: number } = {};
    while (true) {
      const { bytesRead } = await handle.read(header, 0, BLOCK, offset);
      if (bytesRead === 0 && members.size > 0) break; // no end-of-archive blocks: tolerated, as Go's archive/tar does
      if (bytesRead < BLOCK) {
        throw offset === 0
          ? invalid(`${path} is not a tar archive (${bytesRead} bytes)`)
          : truncated(path, offset, members.size);
      }
      if (header.every((b) => b === 0)) break;
      if (!checksumOk(header)) {
        if (offset === 0) throw invalid(`${path} is not a tar archive`);
        throw invalid(`${path} is corrupt: bad tar header at byte ${offset}`);
      }
      const typeflag = String.fromCharCode(header[156]!);
      const size = pending.size ?? readNumber(header.subarray(124, 136), path, offset);
      const dataOffset = offset + BLOCK;
      if (dataOffset + size > fileSize) throw truncated(path, offset, members.size);
      offset = dataOffset + Math.ceil(size / BLOCK) * BLOCK;

      if (typeflag === "x" || typeflag === "L" || typeflag === "K") {
        const data = await readAt(handle, dataOffset, size);
        if (typeflag === "x") pending = { ...pending, ...parsePax(data, path) };
        else if (typeflag === "L") pending.path = cString(data);
        else pending.linkpath = cString(data);
        continue;
      }
      if (typeflag === "g") continue; // global pax headers carry nothing ecrx needs

      const rawName = pending.path ?? ustarName(header);
      const linkName = pending.linkpath ?? cString(header.subarray(157, 257));
      pending = {};
      const type = memberType(typeflag);
      const name = normalizeMemberName(rawName, path);
      if (name === "") continue; // the archive root, "./"
      if (type === "directory") {
        if (!members.has(name)) members.set(name, { name, type, offset: dataOffset, size: 0 });
        continue;
      }
      if (members.has(name)) {
        throw invalid(
          `${path} holds "${name}" twice`,
          "an archive with duplicate members is ambiguous; re-export it",
        );
      }
      members.set(name, { name, type, offset: dataOffset, size, ...(linkName ? { linkName } : {}) });
    }
    return { path, members };
  } finally {
    await handle.close();
  }
}

/**
 * Resolves a path to the regular file member it names, following symlinks and hardlinks inside
 * the archive; a link that leaves the archive is INVALID_INPUT. Undefined when absent.
 */
export function resolveMember(index: TarIndex, name: string): TarMember | undefined {
  let current = normalizeMemberName(name, index.path);
  for (let hops = 0; hops < 32; hops++) {
    const member = index.members.get(current);
    if (!member) return undefined;
    if (member.type === "file") return member;
    if ((member.type !== "symlink" && member.type !== "hardlink") || member.linkName === undefined) {
      throw invalid(`${index.path}: "${name}" is not a regular file`);
    }
    current = linkTarget(member, member.linkName, index.path);
  }
  throw invalid(`${index.path}: too many links resolving "${name}"`);
}

/** Symlinks are relative to their folder, hardlinks to the archive root; neither may leave it. */
function linkTarget(member: TarMember, linkName: string, archive: string): string {
  const joined =
    member.type === "symlink" ? posix.join(posix.dirname(member.name), linkName) : posix.normalize(linkName);
  if (linkName.startsWith("/") || joined === ".." || joined.startsWith("../")) {
    throw invalid(
      `${archive}: ${member.type} "${member.name}" points outside the archive (${linkName})`,
      UNSAFE,
    );
  }
  return normalizeMemberName(joined, archive);
}

/** A member name relative to the archive root; absolute names and `..` components are rejected. */
export function normalizeMemberName(name: string, archive: string): string {
  if (name.startsWith("/")) throw invalid(`${archive}: member "${name}" is an absolute path`, UNSAFE);
  const parts = name.split("/").filter((part) => part !== "" && part !== ".");
  if (parts.includes("..")) throw invalid(`${archive}: member "${name}" points outside the archive`, UNSAFE);
  return parts.join("/");
}

function memberType(typeflag: string): TarMemberType {
  switch (typeflag) {
    case "0":
    case "\0":
    case "7":
      return "file";
    case "5":
      return "directory";
    case "2":
      return "symlink";
    case "1":
      return "hardlink";
    default:
      return "other";
  }
}

function checksumOk(header: Buffer): boolean {
  const stored = parseInt(cString(header.subarray(148, 156)).trim() || "x", 8);
  if (Number.isNaN(stored)) return false;
  let sum = 8 * 0x20; // the checksum field counts as spaces
  for (let i = 0; i < BLOCK; i++) if (i < 148 || i >= 156) sum += header[i]!;
  return sum === stored;
}

/** Octal, or GNU base-256 for sizes over 8 GiB. */
function readNumber(field: Buffer, path: string, offset: number): number {
  if (field[0]! & 0x80) {
    let value = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    if (!Number.isSafeInteger(value)) throw invalid(`${path}: member size too large at byte ${offset}`);
    return value;
  }
  const text = cString(field).trim();
  if (!/^[0-7]*$/.test(text)) throw invalid(`${path} is corrupt: bad size field at byte ${offset}`);
  return text === "" ? 0 : parseInt(text, 8);
}

function ustarName(header: Buffer): string {
  const name = cString(header.subarray(0, 100));
  const isUstar = header.subarray(257, 262).toString("latin1") === "ustar";
  const prefix = isUstar ? cString(header.subarray(345, 500)) : "";
  return prefix ? `${prefix}/${name}` : name;
}

function parsePax(data: Buffer, path: string): { path?: string; linkpath?: string; size?: number } {
  const result: { path?: string; linkpath?: string; size?: number } = {};
  let position = 0;
  while (position < data.length) {
    const space = data.indexOf(0x20, position);
    const length = parseInt(data.subarray(position, space).toString("latin1"), 10);
    if (space < 0 || !Number.isInteger(length) || length <= 0 || position + length > data.length) {
      throw invalid(`${path} is corrupt: bad pax header`);
    }
    const record = data.subarray(space + 1, position + length - 1).toString("utf8");
    const equals = record.indexOf("=");
    const key = record.slice(0, equals);
    const value = record.slice(equals + 1);
    if (key === "path") result.path = value;
    else if (key === "linkpath") result.linkpath = value;
    else if (key === "size") {
      if (!/^\d+$/.test(value)) throw invalid(`${path} is corrupt: bad pax size`);
      result.size = Number(value);
    }
    position += length;
  }
  return result;
}

async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  // Long names and pax records are small; anything bigger is not a real header.
  if (length > 1024 * 1024) throw invalid(`tar extended header of ${length} bytes`);
  const buffer = Buffer.alloc(length);
  await handle.read(buffer, 0, length, position);
  return buffer;
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString("utf8");
}

function truncated(path: string, offset: number, members: number): EcrxError {
  return invalid(
    `${path} is truncated (at byte ${offset}, after ${members} members)`,
    "the file is incomplete; export it again",
  );
}

function invalid(message: string, hint?: string): EcrxError {
  return new EcrxError("INVALID_INPUT", message, hint === undefined ? {} : { hint });
}
