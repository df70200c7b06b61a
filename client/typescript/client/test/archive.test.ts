/** Archives: sha256/size verification and safe unpacking of hostile tar.gz files. */

import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { IntegrityError, UnsafeArchiveError, readTarGz, safeUnpack, sha256Hex, verifiedArtifact } from "../src/index.js";

interface Entry {
  name: string;
  type?: string;
  data?: string;
  link?: string;
}

/** A minimal ustar writer (enough to build hostile archives). */
function tar(entries: Entry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const data = Buffer.from(e.data ?? "");
    const h = Buffer.alloc(512);
    h.write(e.name, 0, 100);
    h.write("0000644\0", 100);
    h.write("0000000\0", 108);
    h.write("0000000\0", 116);
    h.write(`${data.length.toString(8).padStart(11, "0")}\0`, 124);
    h.write("00000000000\0", 136);
    h.write(e.type ?? "0", 156);
    if (e.link) h.write(e.link, 157, 100);
    h.write("ustar\0", 257);
    h.write("00", 263);
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
    blocks.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

const tgz = (entries: Entry[]): Buffer => gzipSync(tar(entries));

function pax(records: Record<string, string>): string {
  return Object.entries(records)
    .map(([k, v]) => {
      const body = ` ${k}=${v}\n`;
      let len = body.length + 1;
      while (`${len}${body}`.length !== len) len++;
      return `${len}${body}`;
    })
    .join("");
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "auton8n-ts-archive-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("verifiedArtifact", () => {
  const data = Buffer.from("hello");
  it("accepts a matching sha256 and size", () => {
    expect(verifiedArtifact(data, sha256Hex(data).toUpperCase(), 5n).sha256).toBe(sha256Hex(data));
  });
  it("rejects a size mismatch, a missing checksum and a wrong checksum", () => {
    expect(() => verifiedArtifact(data, sha256Hex(data), 6n)).toThrow(expect.objectContaining({ reason: "SIZE_MISMATCH" }));
    expect(() => verifiedArtifact(data, "", 5n)).toThrow(expect.objectContaining({ reason: "NO_CHECKSUM" }));
    expect(() => verifiedArtifact(data, "0".repeat(64), 5n)).toThrow(IntegrityError);
    expect(() => verifiedArtifact(data, "0".repeat(64), 5n)).toThrow(expect.objectContaining({ reason: "CHECKSUM_MISMATCH" }));
  });
});

describe("readTarGz / safeUnpack", () => {
  it("unpacks a plugin folder, including a pax long name", async () => {
    const longName = `plugin-x/src/${"deep/".repeat(30)}file.ts`;
    const archive = tgz([
      { name: "plugin-x/", type: "5" },
      { name: "plugin-x/package.json", data: '{"name":"@x/plugin-x"}' },
      { name: "PaxHeader", type: "x", data: pax({ path: longName }) },
      { name: "plugin-x/src/placeholder", data: "export {};\n" },
    ]);
    expect(readTarGz(archive).map((e) => e.path)).toEqual(["plugin-x", "plugin-x/package.json", longName]);
    const folder = await safeUnpack(archive, dir);
    expect(folder).toBe(join(dir, "plugin-x"));
    expect(await readFile(join(dir, longName), "utf8")).toBe("export {};\n");
  });

  it.each([
    ["an absolute path", [{ name: "/etc/passwd", data: "x" }]],
    ["a .. component", [{ name: "plugin/../../escape", data: "x" }]],
    ["a symlink", [{ name: "plugin/link", type: "2", link: "/etc/passwd" }]],
    ["a hard link", [{ name: "plugin/hard", type: "1", link: "plugin/a" }]],
    ["a device", [{ name: "plugin/dev", type: "3" }]],
  ])("refuses %s and writes nothing", async (_what, entries) => {
    const archive = tgz([{ name: "plugin/ok.txt", data: "fine" }, ...entries]);
    expect(() => readTarGz(archive)).toThrow(UnsafeArchiveError);
    await expect(safeUnpack(archive, dir)).rejects.toBeInstanceOf(UnsafeArchiveError);
    expect(await readdir(dir)).toEqual([]);
  });

  it("refuses more content than the cap (a gzip bomb)", () => {
    const archive = tgz([{ name: "plugin/big", data: "0".repeat(100_000) }]);
    expect(() => readTarGz(archive, 10_000)).toThrow(UnsafeArchiveError);
  });

  it("reports garbage as a bad archive", () => {
    expect(() => readTarGz(Buffer.from("not gzip"))).toThrow(expect.objectContaining({ reason: "BAD_ARCHIVE" }));
    const corrupt = tar([{ name: "plugin/a", data: "x" }]);
    corrupt[0] = 0x41; // breaks the header checksum
    expect(() => readTarGz(gzipSync(corrupt))).toThrow(expect.objectContaining({ reason: "BAD_ARCHIVE" }));
  });

  it("does not overwrite an existing folder", async () => {
    const archive = tgz([{ name: "plugin/a.txt", data: "x" }]);
    await safeUnpack(archive, dir);
    await expect(safeUnpack(archive, dir)).rejects.toMatchObject({ code: "EEXIST" });
  });
});
