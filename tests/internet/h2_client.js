// HTTP/2 over TLS client of agentmon's tests: once WAIT_FILE exists, sends
// POST requests to each PATH on one connection, one after the other (the
// later ones use the HPACK dynamic table).
//
//   node h2_client.js AUTHORITY PORT WAIT_FILE PATH...
const fs = require("fs");
const http2 = require("http2");

const [authority, port, waitFile, ...paths] = process.argv.slice(2);

function start() {
  if (!fs.existsSync(waitFile)) {
    setTimeout(start, 10);
    return;
  }
  const session = http2.connect(`https://${authority}:${port}`, { rejectUnauthorized: false });
  session.on("error", (e) => {
    console.error(`h2_client: ${e.message}`);
    process.exit(1);
  });
  const next = (i) => {
    if (i === paths.length) {
      session.close();
      return;
    }
    const req = session.request({ ":method": "POST", ":path": paths[i], "content-type": "application/json" });
    req.on("data", () => {});
    req.on("end", () => next(i + 1));
    req.end(Buffer.alloc(300, 112));
  };
  next(0);
}

start();
