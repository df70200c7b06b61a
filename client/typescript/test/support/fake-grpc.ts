/**
 * A scripted gRPC server on node:http2 (h2c, loopback) for the client's deterministic
 * tests: it records the requests (headers and decoded messages) and answers each call
 * with a handler that writes messages, trailers, or breaks the connection.
 */

import { createServer, type Http2Server, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import type { AddressInfo } from "node:net";

import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";

import { StatusSchema } from "../../client/src/gen/google/rpc/status_pb.js";

export interface RecordedCall {
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
  /** The request message bytes (one unary/server-streaming request). */
  readonly body: Uint8Array;
}

export type CallHandler = (call: FakeCall) => void | Promise<void>;

/** One call in progress: answer it with the helpers. */
export class FakeCall {
  constructor(
    readonly stream: ServerHttp2Stream,
    readonly record: RecordedCall,
  ) {}

  decode<Desc extends DescMessage>(schema: Desc): MessageShape<Desc> {
    return fromBinary(schema, this.record.body);
  }

  /** Sends the response headers (once) and one message. */
  send<Desc extends DescMessage>(schema: Desc, message: MessageInitShape<Desc>): void {
    this.head();
    const bytes = toBinary(schema, create(schema, message));
    const frame = Buffer.alloc(5 + bytes.length);
    frame.writeUInt8(0, 0);
    frame.writeUInt32BE(bytes.length, 1);
    Buffer.from(bytes).copy(frame, 5);
    this.stream.write(frame);
  }

  /** Ends the call with a status (and optional google.rpc.Status details). */
  finish(code = 0, message = "", details: { schema: DescMessage; value: MessageInitShape<DescMessage> }[] = [], extraTrailers: Record<string, string> = {}): void {
    this.head();
    const trailers: Record<string, string> = { "grpc-status": String(code), ...extraTrailers };
    if (message) trailers["grpc-message"] = encodeURIComponent(message);
    if (details.length > 0) {
      const status = create(StatusSchema, {
        code,
        message,
        details: details.map((d) => anyPack(d.schema, create(d.schema, d.value))),
      });
      trailers["grpc-status-details-bin"] = Buffer.from(toBinary(StatusSchema, status)).toString("base64").replace(/=+$/, "");
    }
    this.trailers = trailers;
    this.stream.end();
  }

  /** Breaks the whole connection, as a killed server does. */
  crash(): void {
    this.stream.session?.destroy();
  }

  private headSent = false;
  private trailers: Record<string, string> = { "grpc-status": "0" };
  private head(): void {
    if (this.headSent) return;
    this.headSent = true;
    this.stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    this.stream.once("wantTrailers", () => this.stream.sendTrailers(this.trailers));
  }
}

export class FakeGrpcServer {
  readonly calls: RecordedCall[] = [];
  private readonly handlers = new Map<string, CallHandler[]>();

  private readonly sessions = new Set<Http2Session>();

  private constructor(private readonly server: Http2Server) {}

  static async start(): Promise<FakeGrpcServer> {
    const server = createServer();
    const fake = new FakeGrpcServer(server);
    server.on("session", (session) => {
      fake.sessions.add(session);
      session.on("error", () => {}); // a client that goes away is not a test failure
      session.on("close", () => fake.sessions.delete(session));
    });
    server.on("stream", (stream, headers) => {
      stream.on("error", () => {});
      void fake.onStream(stream, headers);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return fake;
  }

  get target(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Queues handlers for the next calls of a method ("GetJob"); the last one repeats. */
  on(method: string, ...handlers: CallHandler[]): this {
    this.handlers.set(method, [...(this.handlers.get(method) ?? []), ...handlers]);
    return this;
  }

  callsOf(method: string): RecordedCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /** Stops listening and drops every connection. Idempotent. */
  async close(): Promise<void> {
    for (const session of this.sessions) session.destroy();
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const body = raw.length >= 5 ? raw.subarray(5, 5 + raw.readUInt32BE(1)) : new Uint8Array();
    const method = String(headers[":path"] ?? "").split("/").pop() ?? "";
    const record: RecordedCall = { method, headers, body };
    this.calls.push(record);
    const queue = this.handlers.get(method) ?? [];
    const handler = queue.length > 1 ? queue.shift() : queue[0];
    const call = new FakeCall(stream, record);
    if (handler === undefined) {
      call.finish(12, `no handler for ${method}`);
      return;
    }
    try {
      await handler(call);
    } catch (error) {
      if (!stream.destroyed) call.finish(13, String(error));
    }
  }
}
