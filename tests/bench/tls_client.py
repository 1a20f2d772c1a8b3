#!/usr/bin/env python3
"""TLS client of `cargo xtask bench` through libssl (Python's ssl module,
SSL_write_ex/SSL_read_ex): HTTP/1.1 POSTs of a fixed size, one at a time, on
one keep-alive connection, for SECS seconds.

    tls_client.py --ip ADDR --port P --secs S --request-bytes N --reply-body M
                  [--wait-file F] [--hold-file F]

libssl is mapped at `import ssl`; with --wait-file the client connects only
once that file exists (the bench creates it when the probes are attached).
With --hold-file it only keeps libssl mapped until that file exists.
Prints `requests=N secs=T bytes=B` (B: plaintext bytes written).
"""

import argparse
import os
import socket
import ssl
import time


def wait_for(path):
    for _ in range(60000):
        if os.path.exists(path):
            return
        time.sleep(0.01)
    raise SystemExit(f"{path} did not appear")


def request(size):
    head = "POST /v1/messages HTTP/1.1\r\nHost: api.bench.test\r\nContent-Length: {}\r\n\r\n"
    body = size - len(head.format(0))
    body -= len(str(body)) - 1
    out = (head.format(body) + "q" * body).encode()
    assert len(out) == size, (len(out), size)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ip")
    p.add_argument("--port", type=int)
    p.add_argument("--secs", type=float)
    p.add_argument("--request-bytes", type=int, default=512)
    p.add_argument("--reply-body", type=int, default=1024)
    p.add_argument("--wait-file")
    p.add_argument("--hold-file")
    a = p.parse_args()
    if a.hold_file:
        wait_for(a.hold_file)
        return
    if a.wait_file:
        wait_for(a.wait_file)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    sock = ctx.wrap_socket(
        socket.create_connection((a.ip, a.port), timeout=30), server_hostname="api.bench.test"
    )
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = request(a.request_bytes)
    reply = len(f"HTTP/1.1 200 OK\r\nContent-Length: {a.reply_body}\r\n\r\n") + a.reply_body
    n = 0
    start = time.monotonic()
    end = start + a.secs
    while True:
        sock.sendall(req)
        got = 0
        while got < reply:
            data = sock.recv(65536)
            if not data:
                raise SystemExit("server closed the connection")
            got += len(data)
        n += 1
        if n % 16 == 0 and time.monotonic() >= end:
            break
    secs = time.monotonic() - start
    sock.close()
    print(f"requests={n} secs={secs:.6f} bytes={n * len(req)}")


if __name__ == "__main__":
    main()
