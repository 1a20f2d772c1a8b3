// Records what real HTTP/2 clients write, for the h2 fixtures (see README.md).
//
// A cleartext HTTP/2 server (node's http2, prior knowledge) sits behind a
// recording TCP relay on 127.0.0.1. Each client connection's client-to-server
// bytes are saved whole: with prior knowledge a client writes the same frames
// it would write inside TLS. Run from this folder: `node h2_capture.js`.
'use strict';
const fs = require('fs');
const http2 = require('http2');
const net = require('net');
const { execFile } = require('child_process');
const { promisify } = require('util');

const HOST = 'api.anthropic.com';

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

async function main() {
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.on('data', () => {});
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end('{}');
    });
  });
  const serverPort = await listen(server);

  // Client-to-server bytes of each relayed connection, by arrival order.
  const recorded = [];
  const relay = net.createServer((client) => {
    const chunks = [];
    const entry = { chunks, done: null };
    entry.done = new Promise((resolve) => client.on('close', resolve));
    recorded.push(entry);
    const upstream = net.connect(serverPort, '127.0.0.1');
    client.on('data', (d) => {
      chunks.push(Buffer.from(d));
      upstream.write(d);
    });
    upstream.on('data', (d) => client.write(d));
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  const relayPort = await listen(relay);

  async function save(name, entry) {
    await entry.done;
    const bytes = Buffer.concat(entry.chunks);
    fs.writeFileSync(name, bytes);
    console.log(`${name}: ${bytes.length} bytes in ${entry.chunks.length} reads`);
  }

  // curl (libcurl + nghttp2): one request. curl 7.88 does not send a second
  // request on a reused prior-knowledge connection, so the dynamic table is
  // exercised by the node client below. --resolve keeps the name: the
  // authority is `api.anthropic.com:<relay port>`.
  const body = JSON.stringify({ model: 'test-model', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] });
  // Asynchronously: the relay and server run in this process.
  await promisify(execFile)('curl', [
    '-sS', '-o', '/dev/null', '--http2-prior-knowledge',
    '--resolve', `${HOST}:${relayPort}:127.0.0.1`,
    '-H', 'content-type: application/json', '-H', 'x-api-key: sk-test-not-a-key',
    '-H', 'anthropic-version: 2023-06-01',
    '--data-binary', body, `http://${HOST}:${relayPort}/v1/messages?beta=true`,
  ]);
  await save('h2_curl.bin', recorded[0]);

  // node http2: three requests in turn on one session; the later ones refer to
  // headers the first put in the HPACK dynamic table. The first body (5000
  // bytes) is one DATA frame longer than a 4096-byte capture.
  const session = http2.connect(`http://${HOST}`, {
    createConnection: () => net.connect(relayPort, '127.0.0.1'),
  });
  const request = (headers, data) =>
    new Promise((resolve, reject) => {
      const req = session.request(headers);
      req.on('response', () => {});
      req.on('data', () => {});
      req.on('end', resolve);
      req.on('error', reject);
      req.end(data);
    });
  const common = {
    'content-type': 'application/json',
    'user-agent': 'claude-cli/2.1.197 (external, cli)',
    'x-api-key': 'sk-test-not-a-key',
    'anthropic-version': '2023-06-01',
  };
  await request({ ':method': 'POST', ':path': '/v1/messages?beta=true', ...common }, 'x'.repeat(5000));
  await request({ ':method': 'POST', ':path': '/api/event_logging/batch', ...common }, '{"events":[]}');
  await request({ ':method': 'GET', ':path': '/v1/models', ...common });
  session.close();
  await save('h2_node.bin', recorded[1]);

  relay.close();
  server.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
