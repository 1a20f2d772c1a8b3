#!/usr/bin/env python3
"""An agent at work in the background of `cargo xtask bench`'s non-agent
scenario: the bench copies this to aider's console-script path, so agentmon
tracks it and attaches its probes to the libssl it maps. It POSTs fixed-size
requests on one keep-alive TLS connection at a low rate (so agentmon has a
tracked socket and probe hits, without taking the CPU from the workload
being measured) until the stop file exists.

    tls_agent.py --ip ADDR --port P --rate R --request-bytes N --reply-body M
                 --wait-file F --ready-file F --stop-file F

libssl is mapped at `import ssl`, and the TCP connection is opened at once:
agentmon looks for TLS libraries when a tracked process connects, so the
probes attach now rather than at its next housekeeping tick. The TLS
handshake and the requests wait for the wait file (the bench creates it when
the probes are attached, so every request is seen). It writes the ready file
after the first reply. Prints `requests=N secs=T`.
"""

import argparse
import os
import socket
import ssl
import time

# Give up if the bench never says go or stop.
LIMIT_SECS = 900


def wait_for(path):
    for _ in range(LIMIT_SECS * 100):
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
    p.add_argument("--rate", type=float, default=5)
    p.add_argument("--request-bytes", type=int, default=512)
    p.add_argument("--reply-body", type=int, default=1024)
    p.add_argument("--wait-file")
    p.add_argument("--ready-file")
    p.add_argument("--stop-file")
    a = p.parse_args()
    tcp = socket.create_connection((a.ip, a.port), timeout=30)
    wait_for(a.wait_file)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    sock = ctx.wrap_socket(tcp, server_hostname="api.bench.test")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = request(a.request_bytes)
    reply = len(f"HTTP/1.1 200 OK\r\nContent-Length: {a.reply_body}\r\n\r\n") + a.reply_body
    n = 0
    start = time.monotonic()
    while not os.path.exists(a.stop_file) and time.monotonic() - start < LIMIT_SECS:
        sock.sendall(req)
        got = 0
        while got < reply:
            data = sock.recv(65536)
            if not data:
                raise SystemExit("server closed the connection")
            got += len(data)
        n += 1
        if n == 1:
            open(a.ready_file, "w").close()
        # Paced from the start, so a slow reply does not lower the rate.
        time.sleep(max(0.0, start + n / a.rate - time.monotonic()))
    sock.close()
    print(f"requests={n} secs={time.monotonic() - start:.6f}")


if __name__ == "__main__":
    main()
