// HTTP/2 over TLS server of agentmon's tests: answers every request with
// 100 bytes once its body is read.
//
//   node h2_server.js CERT KEY ADDR PORT READY_FILE
const fs = require("fs");
const http2 = require("http2");

const [cert, key, addr, port, ready] = process.argv.slice(2);
const server = http2.createSecureServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) });
server.on("stream", (stream) => {
  stream.on("data", () => {});
  stream.on("end", () => {
    stream.respond({ ":status": 200 });
    stream.end(Buffer.alloc(100, 104));
  });
});
server.listen(Number(port), addr, () => fs.writeFileSync(ready, ""));
