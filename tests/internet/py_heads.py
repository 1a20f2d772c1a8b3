#!/usr/bin/env python3
"""Fills agentmon's per-thread TLS maps: N threads each make a TLS session in
memory (client and server objects over memory BIOs, no socket) and write a
request head with it W times, which no packet ever carries; then all of them
wait until standard input closes, and exit.

    py_heads.py --threads N --writes W --cert CERT --key KEY --udp ADDR:PORT

It first sends one datagram to ADDR:PORT (agentmon looks for TLS libraries
when a process uses the network), prints `ready`, and waits for a line on
standard input before starting the threads; once every thread has written,
it prints `wrote N BYTES` (BYTES: the head's length).
"""

import argparse
import socket
import ssl
import sys
import threading

HEAD = b"GET /v1/models HTTP/1.1\r\nHost: api.model.test\r\n\r\n"


def pump(src, dst):
    data = src.read()
    if data:
        dst.write(data)


def session(server_ctx, client_ctx):
    """A client session whose handshake was made in memory."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="api.model.test")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = [False, False]
    for _ in range(20):
        for i, obj in enumerate((client, server)):
            if not done[i]:
                try:
                    obj.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
        pump(c_out, s_in)
        pump(s_out, c_in)
        if all(done):
            return client
    raise RuntimeError("handshake did not finish")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--writes", type=int, default=1)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--udp", required=True)
    args = ap.parse_args()

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(args.cert, args.key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE

    host, port = args.udp.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"hello", (host, int(port)))
    print("ready", flush=True)
    sys.stdin.readline()

    written = threading.Semaphore(0)
    failed = []
    leave = threading.Event()

    def run():
        try:
            client = session(server_ctx, client_ctx)
            for _ in range(args.writes):
                client.write(HEAD)
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            failed.append(repr(e))
        written.release()
        leave.wait()

    threading.stack_size(256 * 1024)
    threads = [threading.Thread(target=run) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for _ in threads:
        written.acquire()
    if failed:
        print(f"failed {len(failed)}: {failed[0]}", flush=True)
    else:
        print(f"wrote {len(threads)} {len(HEAD)}", flush=True)
    sys.stdin.read()
    leave.set()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
