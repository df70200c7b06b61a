/** Downloaded plugin archives: checksum verification and safe unpacking. */

import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, posix } from "node:path";
import { gunzipSync } from "node:zlib";

import { IntegrityError, UnsafeArchiveError } from "./errors.js";

/** A job's plugin archive (tar.gz) with its verified hex sha256. */
export interface Artifact {
  readonly data: Buffer;
  /** Lower-case hex sha256 of `data`, as verified. */
  readonly sha256: string;
}

/** A plugin archive holds sources without node_modules; the cap only stops a gzip bomb. */
export const DEFAULT_MAX_UNPACKED_BYTES = 256 * 1024 * 1024;

/** Hex sha256 of some bytes (node:crypto). */
export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * Returns the archive if it matches the announced sha256 and size.
 *
 * @throws IntegrityError when the size differs or the checksum is missing or differs.
 */
export function verifiedArtifact(data: Buffer, sha256: string, totalSize: bigint): Artifact {
  if (BigInt(data.length) !== totalSize) {
    throw new IntegrityError(`archive is ${data.length} bytes, the server announced ${totalSize}`, "SIZE_MISMATCH");
  }
  if (!sha256) throw new IntegrityError("the server sent no sha256 for the archive", "NO_CHECKSUM");
  const actual = sha256Hex(data);
  if (actual !== sha256.toLowerCase()) {
    throw new IntegrityError(`archive sha256 is ${actual}, the server announced ${sha256}`);
  }
  return { data, sha256: actual };
}

/** One regular file or directory of an archive. */
export interface ArchiveEntry {
  /** Normalised relative POSIX path, without a trailing slash. */
  readonly path: string;
  readonly type: "file" | "directory";
  readonly mode: number;
  /** File contents (empty for directories). */
  readonly data: Buffer;
}

/**
 * Reads a tar.gz completely and checks every entry before anything is written: only
 * regular files and directories with relative paths that stay inside the archive.
 *
 * @throws UnsafeArchiveError for absolute paths, `..`, links, devices, or more than
 *   `maxBytes` of content; IntegrityError when the data is not a readable tar.gz.
 */
export function readTarGz(data: Uint8Array, maxBytes = DEFAULT_MAX_UNPACKED_BYTES): ArchiveEntry[] {
  let tar: Buffer;
  try {
    tar = gunzipSync(data, { maxOutputLength: maxBytes + 1024 * 1024 });
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ERR_BUFFER_TOO_LARGE") throw new UnsafeArchiveError(`archive unpacks to more than ${maxBytes} bytes`);
    throw new IntegrityError(`unreadable archive: ${(error as Error).message}`, "BAD_ARCHIVE");
  }
  const entries: ArchiveEntry[] = [];
  let offset = 0;
  let total = 0;
  let paxPath: string | undefined;
  let longName: string | undefined;
  while (offset + 512 <= tar.length) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break; // end of archive
    checkHeaderChecksum(header);
    const size = octal(header, 124, 12);
    const type = String.fromCharCode(header[156] ?? 0);
    const bodyStart = offset + 512;
    const body = tar.subarray(bodyStart, bodyStart + size);
    if (body.length !== size) throw new IntegrityError("truncated archive", "BAD_ARCHIVE");
    offset = bodyStart + Math.ceil(size / 512) * 512;
    if (type === "x") {
      paxPath = paxRecords(body).get("path");
      continue;
    }
    if (type === "g") continue; // global pax header: nothing we use
    if (type === "L") {
      longName = body.toString("utf8").replace(/\0+$/, "");
      continue;
    }
    const name = paxPath ?? longName ?? ustarName(header);
    paxPath = undefined;
    longName = undefined;
    const path = safePath(name);
    if (type === "0" || type === "\0" || type === "7") {
      total += size;
      if (total > maxBytes) throw new UnsafeArchiveError(`archive unpacks to more than ${maxBytes} bytes`);
      entries.push({ path, type: "file", mode: octal(header, 100, 8) & 0o755, data: Buffer.from(body) });
    } else if (type === "5") {
      if (path !== ".") entries.push({ path, type: "directory", mode: 0o755, data: Buffer.alloc(0) });
    } else {
      const kind = { "1": "a hard link", "2": "a symlink", "3": "a device", "4": "a device", "6": "a fifo" }[type] ?? `of type ${JSON.stringify(type)}`;
      throw new UnsafeArchiveError(`archive entry ${JSON.stringify(name)} is ${kind}`);
    }
  }
  return entries;
}

/**
 * Unpacks a tar.gz into `directory` and returns the plugin folder: `directory/<top>`
 * when the archive has a single top-level folder, else `directory`.
 *
 * Every entry is checked first (see readTarGz); the files are written into a temporary
 * folder inside `directory` and the top-level entries moved into place, so a rejected
 * or broken archive leaves nothing behind.
 *
 * @throws as readTarGz; an Error with code EEXIST when a top-level entry already exists.
 */
export async function safeUnpack(data: Uint8Array, directory: string, maxBytes = DEFAULT_MAX_UNPACKED_BYTES): Promise<string> {
  const entries = readTarGz(data, maxBytes);
  const tops = [...new Set(entries.map((e) => e.path.split("/")[0] ?? e.path))];
  await mkdir(directory, { recursive: true });
  for (const top of tops) {
    if (await exists(join(directory, top))) {
      throw Object.assign(new Error(`${join(directory, top)} already exists`), { code: "EEXIST" });
    }
  }
  const staging = await mkdtemp(join(directory, ".unpack-"));
  try {
    for (const entry of entries) {
      const target = join(staging, ...entry.path.split("/"));
      if (entry.type === "directory") {
        await mkdir(target, { recursive: true });
      } else {
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, entry.data, { mode: entry.mode || 0o644, flag: "wx" });
      }
    }
    for (const top of tops) await rename(join(staging, top), join(directory, top));
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  const only = tops.length === 1 ? tops[0] : undefined;
  if (only !== undefined && entries.some((e) => e.path === only && e.type === "directory" || e.path.startsWith(`${only}/`))) {
    return join(directory, only);
  }
  return directory;
}

function safePath(name: string): string {
  if (name.includes("\0")) throw new UnsafeArchiveError(`archive entry ${JSON.stringify(name)} contains NUL`);
  if (name.startsWith("/") || /^[A-Za-z]:/.test(name) || name.includes("\\")) {
    throw new UnsafeArchiveError(`archive entry ${JSON.stringify(name)} is absolute`);
  }
  if (name.split("/").includes("..")) {
    throw new UnsafeArchiveError(`archive entry ${JSON.stringify(name)} climbs out with ..`);
  }
  const normal = posix.normalize(name).replace(/\/+$/, "");
  if (normal === "" || normal.startsWith("../")) {
    throw new UnsafeArchiveError(`archive entry ${JSON.stringify(name)} is not a relative path`);
  }
  return normal;
}

function checkHeaderChecksum(header: Buffer): void {
  const stored = octal(header, 148, 8);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : (header[i] ?? 0);
  if (sum !== stored) throw new IntegrityError("archive header checksum mismatch", "BAD_ARCHIVE");
}

function octal(buf: Buffer, start: number, length: number): number {
  const field = buf.subarray(start, start + length);
  if (((field[0] ?? 0) & 0x80) !== 0) throw new UnsafeArchiveError("archive entry too large (base-256 size)");
  const text = field.toString("ascii").replace(/\0.*$/s, "").trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new IntegrityError(`bad octal field ${JSON.stringify(text)} in archive`, "BAD_ARCHIVE");
  return Number.parseInt(text, 8);
}

function cString(buf: Buffer, start: number, length: number): string {
  const field = buf.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString("utf8");
}

function ustarName(header: Buffer): string {
  const name = cString(header, 0, 100);
  const magic = cString(header, 257, 6);
  const prefix = magic.startsWith("ustar") ? cString(header, 345, 155) : "";
  return prefix ? `${prefix}/${name}` : name;
}

/** Parses "LEN key=value\n" pax records. */
function paxRecords(body: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let pos = 0;
  while (pos < body.length) {
    const space = body.indexOf(0x20, pos);
    if (space === -1) break;
    const length = Number.parseInt(body.subarray(pos, space).toString("ascii"), 10);
    if (!Number.isInteger(length) || length <= 0 || pos + length > body.length) {
      throw new IntegrityError("bad pax header in archive", "BAD_ARCHIVE");
    }
    const record = body.subarray(space + 1, pos + length - 1).toString("utf8");
    const eq = record.indexOf("=");
    if (eq > 0) records.set(record.slice(0, eq), record.slice(eq + 1));
    pos += length;
  }
  return records;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
