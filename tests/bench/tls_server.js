// TLS server of `cargo xtask bench`: answers every fixed-size request on a
// keep-alive TLS connection with one fixed HTTP/1.1 response, with as little
// work of its own as it can, so the clients' side dominates.
//
//   node tls_server.js ADDR PORT CERT KEY READY_FILE REQUEST_BYTES REPLY_BODY_BYTES
//
// The bench runs it from a copy of the node executable: TLS probes attach
// per file, so the server's own OpenSSL is never probed.
const fs = require("fs");
const tls = require("tls");

const [addr, port, cert, key, ready, requestBytes, replyBody] = process.argv.slice(2);
const request = Number(requestBytes);
const reply = Buffer.concat([
  Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${replyBody}\r\n\r\n`),
  Buffer.alloc(Number(replyBody), 114),
]);

const server = tls.createServer(
  { cert: fs.readFileSync(cert), key: fs.readFileSync(key) },
  (socket) => {
    socket.setNoDelay(true);
    let pending = 0;
    socket.on("data", (d) => {
      pending += d.length;
      while (pending >= request) {
        pending -= request;
        socket.write(reply);
      }
    });
    socket.on("error", () => socket.destroy());
  },
);
server.listen(Number(port), addr, () => fs.writeFileSync(ready, "ready\n"));
