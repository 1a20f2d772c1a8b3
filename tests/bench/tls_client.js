// TLS client of `cargo xtask bench` through node's OpenSSL (statically in the
// node executable): HTTP/1.1 POSTs of a fixed size, one at a time, on one
// keep-alive connection, for SECS seconds.
//
//   node tls_client.js ADDR PORT SECS REQUEST_BYTES REPLY_BODY_BYTES [WAIT_FILE]
//
// With WAIT_FILE it connects only once that file exists (the bench creates
// it when the probes are attached). Prints `requests=N secs=T bytes=B`.
const fs = require("fs");
const tls = require("tls");

const [addr, port, secs, requestBytes, replyBody, waitFile] = process.argv.slice(2);

function request(size) {
  const head = (n) => `POST /v1/messages HTTP/1.1\r\nHost: api.bench.test\r\nContent-Length: ${n}\r\n\r\n`;
  let body = size - head(0).length;
  body -= String(body).length - 1;
  const out = Buffer.from(head(body) + "q".repeat(body));
  if (out.length !== size) throw new Error(`request is ${out.length} bytes, not ${size}`);
  return out;
}

function run() {
  const req = request(Number(requestBytes));
  const reply = `HTTP/1.1 200 OK\r\nContent-Length: ${replyBody}\r\n\r\n`.length + Number(replyBody);
  let n = 0;
  let got = 0;
  let start = 0;
  const socket = tls.connect(
    { host: addr, port: Number(port), servername: "api.bench.test", rejectUnauthorized: false },
    () => {
      socket.setNoDelay(true);
      start = process.hrtime.bigint();
      socket.write(req);
    },
  );
  const end = () => Number(process.hrtime.bigint() - start) / 1e9;
  socket.on("data", (d) => {
    got += d.length;
    if (got < reply) return;
    got -= reply;
    n += 1;
    if (n % 16 === 0 && end() >= Number(secs)) {
      console.log(`requests=${n} secs=${end().toFixed(6)} bytes=${n * req.length}`);
      socket.destroy();
      return;
    }
    socket.write(req);
  });
  socket.on("error", (e) => {
    console.error(`tls_client.js: ${e.message}`);
    process.exit(1);
  });
}

function start() {
  if (waitFile && !fs.existsSync(waitFile)) {
    setTimeout(start, 10);
    return;
  }
  run();
}

start();
