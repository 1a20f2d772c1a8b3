#!/usr/bin/env python3
"""HTTP and HTTPS server of agentmon's test internet.

    web_server.py --ready FILE --log FILE --reply N --cert PEM --key PEM
                  [--handshake-delay-ms MS] [--tls ADDR:PORT ...] [--plain ADDR:PORT ...]

Answers one HTTP/1.1 request per connection with N body bytes, then waits for
the client to close; over TLS, a request that asks for keep-alive is answered
and the next one read. It counts the raw bytes of every connection on its own
side of the socket (TLS records included, through a MemoryBIO), so a test can
compare agentmon's figures with exact numbers even for TLS. One JSON line per
connection goes to the log: local, peer, tls, sni, raw_in, raw_out.

Over TLS it answers the ClientHello only after --handshake-delay-ms, as a
remote API across the internet would: a client's first TLS write comes at
least that long after its connect, and no sooner.
"""

import argparse
import json
import socket
import ssl
import threading
import time

LOCK = threading.Lock()


def request_complete(buf):
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip() or 0)
    return True


def keep_alive(request):
    head = request.partition(b"\r\n\r\n")[0].lower()
    return b"\r\nconnection: keep-alive" in head


def response(n, keep=False):
    connection = b"keep-alive" if keep else b"close"
    return (
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n" % (n, connection)
        + b"r" * n
    )


class Counted:
    """A socket that counts what crosses it."""

    def __init__(self, conn):
        self.conn, self.raw_in, self.raw_out = conn, 0, 0
        # Application bytes (TLS plaintext, or the plain bytes themselves).
        self.plain_in, self.plain_out = 0, 0
        # (plaintext in, out) per request, in order.
        self.requests = []

    def recv(self):
        try:
            data = self.conn.recv(65536)
        except OSError:
            data = b""
        self.raw_in += len(data)
        return data

    def send(self, data):
        if data:
            self.conn.sendall(data)
            self.raw_out += len(data)

    def done_sending(self):
        # FIN after the reply: the client reads to EOF, then closes, and
        # whatever it still sends (a TLS close_notify) is counted below.
        try:
            self.conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve_plain(sock, reply):
    buf = b""
    while not request_complete(buf):
        data = sock.recv()
        if not data:
            return
        buf += data
    sock.plain_in = len(buf)
    sock.plain_out = len(response(reply))
    sock.send(response(reply))
    sock.done_sending()
    while sock.recv():
        pass


def serve_tls(sock, ctx, reply, sni, delay):
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_side=True)
    hello = [True]

    def pump():
        sock.send(outgoing.read())
        data = sock.recv()
        if data:
            incoming.write(data)
        if data and hello[0]:
            hello[0] = False
            time.sleep(delay)
        return bool(data)

    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            if not pump():
                return
    sock.send(outgoing.read())
    sni.append(getattr(tls, "sni", None))
    while True:
        buf = b""
        while not request_complete(buf):
            try:
                chunk = tls.read(65536)
                if not chunk:
                    return
                buf += chunk
            except ssl.SSLWantReadError:
                if not pump():
                    return
        keep = keep_alive(buf)
        answer = response(reply, keep)
        sock.plain_in += len(buf)
        sock.plain_out += len(answer)
        sock.requests.append([len(buf), len(answer)])
        tls.write(answer)
        sock.send(outgoing.read())
        if not keep:
            break
    sock.done_sending()
    # Count whatever the client still sends (its close_notify) until it closes.
    while sock.recv():
        pass


def handle(conn, peer, local, ctx, reply, log, delay):
    sock, sni = Counted(conn), []
    try:
        if ctx:
            serve_tls(sock, ctx, reply, sni, delay)
        else:
            serve_plain(sock, reply)
    except (OSError, ssl.SSLError):
        pass
    finally:
        conn.close()
    line = {"local": local, "peer": peer[0], "tls": ctx is not None,
            "sni": sni[0] if sni else None, "raw_in": sock.raw_in, "raw_out": sock.raw_out,
            "plain_in": sock.plain_in, "plain_out": sock.plain_out, "requests": sock.requests}
    with LOCK, open(log, "a") as f:
        f.write(json.dumps(line) + "\n")


def listen(addr, ctx, reply, log, delay=0.0):
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(64)

    def accept():
        while True:
            conn, peer = s.accept()
            threading.Thread(
                target=handle, args=(conn, peer, addr, ctx, reply, log, delay), daemon=True
            ).start()

    threading.Thread(target=accept, daemon=True).start()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tls", action="append", default=[])
    p.add_argument("--plain", action="append", default=[])
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--reply", type=int, required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--ready", required=True)
    p.add_argument("--handshake-delay-ms", type=float, default=0.0)
    args = p.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    # The server side learns the client's SNI only through this callback.
    ctx.sni_callback = lambda tls, name, _ctx: setattr(tls, "sni", name)
    for addr in args.tls:
        listen(addr, ctx, args.reply, args.log, args.handshake_delay_ms / 1000)
    for addr in args.plain:
        listen(addr, None, args.reply, args.log)
    open(args.ready, "w").close()
    threading.Event().wait()


if __name__ == "__main__":
    main()
