/**
 * TLS in front of the real server: throwaway certificates (openssl) and a TLS-terminating
 * proxy (node:tls, ALPN h2) that forwards the bytes to the plaintext gRPC port.
 */

import { execFile } from "node:child_process";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { connect as netConnect, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer as createTlsServer, type Server as TlsServer } from "node:tls";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface TestPki {
  readonly dir: string;
  readonly caFile: string;
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  /** A second, unrelated CA: trusting it instead must fail. */
  readonly otherCaFile: string;
  /** The only name in the server certificate (no IP SAN). */
  readonly serverName: string;
}

async function openssl(dir: string, ...args: string[]): Promise<void> {
  await run("openssl", args, { cwd: dir, timeout: 30_000 });
}

async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", `${name}.key`, "-out", `${name}.crt`, "-days", "2", "-subj", `/CN=${name}`);
}

async function makeLeaf(dir: string, name: string, ca: string, ext: string): Promise<void> {
  await writeFile(join(dir, `${name}.ext`), `${ext}\n`);
  await openssl(dir, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
  await openssl(dir, "x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`,
    "-CAcreateserial", "-out", `${name}.crt`, "-days", "2", "-extfile", `${name}.ext`);
}

/** A CA, a server certificate for `auton8n.test`, a client certificate, another CA. */
export async function makePki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), "auton8n-ts-pki-"));
  const serverName = "auton8n.test";
  await makeCa(dir, "ca");
  await makeCa(dir, "other-ca");
  await makeLeaf(dir, "server", "ca", `subjectAltName=DNS:${serverName}\nextendedKeyUsage=serverAuth`);
  await makeLeaf(dir, "client", "ca", "extendedKeyUsage=clientAuth");
  return {
    dir,
    caFile: join(dir, "ca.crt"),
    serverCertFile: join(dir, "server.crt"),
    serverKeyFile: join(dir, "server.key"),
    clientCertFile: join(dir, "client.crt"),
    clientKeyFile: join(dir, "client.key"),
    otherCaFile: join(dir, "other-ca.crt"),
    serverName,
  };
}

/** A TLS proxy requiring a client certificate from the PKI's CA (mutual TLS). */
export class TlsProxy {
  private readonly sockets = new Set<Socket>();
  /** Handshakes that failed (no or bad client certificate). */
  readonly rejected: string[] = [];

  private constructor(private readonly server: TlsServer) {}

  static async start(pki: TestPki, upstream: string): Promise<TlsProxy> {
    const [host, port] = upstream.split(":") as [string, string];
    const server = createTlsServer({
      key: await readFile(pki.serverKeyFile),
      cert: await readFile(pki.serverCertFile),
      ca: await readFile(pki.caFile),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ["h2"],
    });
    const proxy = new TlsProxy(server);
    server.on("tlsClientError", (error) => proxy.rejected.push(error.message));
    server.on("secureConnection", (tls) => {
      const plain = netConnect(Number(port), host);
      for (const s of [tls, plain]) {
        proxy.sockets.add(s);
        s.on("close", () => proxy.sockets.delete(s));
        s.on("error", () => {
          tls.destroy();
          plain.destroy();
        });
      }
      tls.pipe(plain).pipe(tls);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return proxy;
  }

  get target(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
