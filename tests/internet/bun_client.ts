// Bun client of agentmon's tests, meant to be compiled into a single-file
// executable (`bun build --compile`): the same shape as Claude Code's native
// binary, with BoringSSL statically linked and no SSL_* symbols. It POSTs N
// bytes over TLS (certificate checks off: the test servers are self-signed)
// and reads the whole reply.
//
//   bun_client NAME PORT PATH BODY_BYTES [fetch|tls] [WAIT_FILE]
//
// With WAIT_FILE it starts only once that file exists (a long-lived agent).
//
// `fetch` (the default) goes through Bun's native HTTP client, the path
// Claude Code's API calls take (its "HTTP Client" thread); `tls` goes through
// node:tls on the main thread and writes one HTTP/1.1 request by hand.
// Prints `received=<bytes of the reply body (fetch) or stream (tls)>`.
import { isIP } from "node:net";
import * as tls from "node:tls";

const [name, port, path, bodyArg, mode = "fetch", waitFile] = process.argv.slice(2);
if (!name || !port || !path || bodyArg === undefined) {
  console.error("usage: bun_client NAME PORT PATH BODY_BYTES [fetch|tls]");
  process.exit(2);
}
if (waitFile) {
  const { existsSync } = await import("node:fs");
  for (let i = 0; i < 3000 && !existsSync(waitFile); i++) {
    await Bun.sleep(10);
  }
}
const bodyBytes = Number(bodyArg);
const body = Buffer.alloc(bodyBytes, 110); // 'n'

function fail(e: unknown): never {
  console.error(`bun_client: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}

if (mode === "fetch") {
  try {
    const res = await fetch(`https://${name}:${port}${path}`, {
      method: "POST",
      body,
      headers: { "content-type": "application/octet-stream", connection: "close" },
      // Bun's own option; NODE_TLS_REJECT_UNAUTHORIZED=0 does the same.
      tls: { rejectUnauthorized: false },
    } as RequestInit);
    const got = await res.arrayBuffer();
    console.log(`status=${res.status} received=${got.byteLength}`);
  } catch (e) {
    fail(e);
  }
} else if (mode === "tls") {
  const socket = tls.connect(
    {
      host: name,
      port: Number(port),
      // SNI takes names only.
      ...(isIP(name) ? {} : { servername: name }),
      rejectUnauthorized: false,
    },
    () => {
      const head =
        `POST ${path} HTTP/1.1\r\nHost: ${name}\r\n` +
        `Content-Length: ${bodyBytes}\r\nConnection: close\r\n\r\n`;
      socket.write(Buffer.concat([Buffer.from(head), body]));
    },
  );
  let received = 0;
  socket.on("data", (d: Buffer) => (received += d.length));
  socket.on("end", () => {
    console.log(`received=${received}`);
    socket.end();
  });
  socket.on("error", fail);
} else {
  fail(`unknown mode ${mode}: use fetch or tls`);
}
