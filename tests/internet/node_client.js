// Node client of agentmon's tests: resolves with node's own resolver
// (c-ares, dns.resolve4 — not getaddrinfo), connects over TLS with SNI,
// POSTs N bytes and reads the reply to EOF.
//
//   node node_client.js NAME PORT PATH BODY_BYTES [WAIT_FILE]
//
// With WAIT_FILE it starts only once that file exists (a long-lived agent).
const dns = require("dns");
const fs = require("fs");
const tls = require("tls");

const [name, port, path, body, waitFile] = process.argv.slice(2);

function start() {
  if (waitFile && !fs.existsSync(waitFile)) {
    setTimeout(start, 10);
    return;
  }
  dns.resolve4(name, request);
}

function request(err, addrs) {
  if (err) {
    console.error(`node_client: resolve ${name}: ${err.message}`);
    process.exit(1);
  }
  const socket = tls.connect(
    { host: addrs[0], port: Number(port), servername: name, rejectUnauthorized: false },
    () => {
      const head = `POST ${path} HTTP/1.1\r\nHost: ${name}\r\nContent-Length: ${body}\r\nConnection: close\r\n\r\n`;
      socket.write(Buffer.concat([Buffer.from(head), Buffer.alloc(Number(body), 110)]));
    },
  );
  let received = 0;
  socket.on("data", (d) => (received += d.length));
  socket.on("end", () => {
    console.log(`received=${received}`);
    socket.end();
  });
  socket.on("error", (e) => {
    console.error(`node_client: ${e.message}`);
    process.exit(1);
  });
}

start();
