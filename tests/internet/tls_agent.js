// An agent at work in the background of `cargo xtask bench`'s non-agent
// scenario, on node: the bench copies this to Gemini CLI's bundle path, so
// agentmon tracks it and attaches its probes to the node executable (whose
// OpenSSL is inside it), the same file an untracked node process runs. It
// POSTs fixed-size requests on one keep-alive TLS connection at a low rate
// until STOP_FILE exists.
//
//   node tls_agent.js ADDR PORT RATE REQUEST_BYTES REPLY_BODY_BYTES WAIT_FILE READY_FILE STOP_FILE
//
// It connects once WAIT_FILE exists (the bench creates it when the probes are
// attached, so every request is seen), and writes READY_FILE after the first
// reply. Prints `requests=N secs=T`.
const fs = require("fs");
const tls = require("tls");

const [addr, port, rate, requestBytes, replyBody, waitFile, readyFile, stopFile] =
  process.argv.slice(2);
// Give up if the bench never says go or stop.
const LIMIT_SECS = 900;

function request(size) {
  const head = (n) => `POST /v1/messages HTTP/1.1\r\nHost: api.bench.test\r\nContent-Length: ${n}\r\n\r\n`;
  let body = size - head(0).length;
  body -= String(body).length - 1;
  const out = Buffer.from(head(body) + "q".repeat(body));
  if (out.length !== size) throw new Error(`request is ${out.length} bytes, not ${size}`);
  return out;
}

const req = request(Number(requestBytes));
const reply = `HTTP/1.1 200 OK\r\nContent-Length: ${replyBody}\r\n\r\n`.length + Number(replyBody);
let start = 0;
const elapsed = () => (Date.now() - start) / 1000;
let n = 0;
let got = 0;
let socket;

function connect() {
  start = Date.now();
  socket = tls.connect(
    { host: addr, port: Number(port), servername: "api.bench.test", rejectUnauthorized: false },
    () => {
      socket.setNoDelay(true);
      socket.write(req);
    },
  );
  socket.on("data", (d) => {
    got += d.length;
    if (got < reply) return;
    got -= reply;
    n += 1;
    if (n === 1) fs.writeFileSync(readyFile, "");
    // Paced from the start, so a slow reply does not lower the rate.
    setTimeout(next, Math.max(0, start + (n * 1000) / Number(rate) - Date.now()));
  });
  socket.on("error", (e) => {
    console.error(`tls_agent.js: ${e.message}`);
    process.exit(1);
  });
}

function waitThenConnect(since) {
  if (fs.existsSync(waitFile)) return connect();
  if (Date.now() - since >= LIMIT_SECS * 1000) {
    console.error(`tls_agent.js: ${waitFile} did not appear`);
    process.exit(1);
  }
  setTimeout(() => waitThenConnect(since), 10);
}

function next() {
  if (fs.existsSync(stopFile) || elapsed() >= LIMIT_SECS) {
    console.log(`requests=${n} secs=${elapsed().toFixed(6)}`);
    socket.destroy();
    return;
  }
  socket.write(req);
}

waitThenConnect(Date.now());
