#!/usr/bin/env python3
"""Python client of agentmon's tests: resolves a name (glibc getaddrinfo, or
its own raw DNS query like c-ares or Go do), connects over TLS (with SNI) or
plain HTTP, POSTs N bytes and reads the reply to EOF. With --then, it first
makes each request there on the same connection (keep-alive), one at a time.

    py_client.py --name NAME | --ip ADDR [--sni NAME] [--resolver glibc|raw|raw-tcp]
                 [--qname-bytes HEX] [--tls] [--raw] --port P --path PATH --body N
                 [--then PATH:BODY ...]
"""

import argparse
import os
import socket
import ssl
import sys
import time


def raw_resolve(qname_labels, tcp=False):
    """One A query over UDP (or TCP) to the first nameserver in /etc/resolv.conf."""
    from dnslib import QTYPE, DNSLabel, DNSQuestion, DNSRecord

    server = next(
        line.split()[1] for line in open("/etc/resolv.conf") if line.startswith("nameserver")
    )
    query = DNSRecord(q=DNSQuestion(DNSLabel(qname_labels), QTYPE.A))
    if tcp:
        reply = DNSRecord.parse(query.send(server, 53, tcp=True, timeout=5))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(query.pack(), (server, 53))
        data, _ = s.recvfrom(4096)
        reply = DNSRecord.parse(data)
    return next(str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A)


def keep_alive_request(sock, host, path, body):
    """POSTs BODY bytes to PATH asking for keep-alive, reads the whole reply."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {body}\r\n"
        "Connection: keep-alive\r\n\r\n"
    ).encode()
    sock.sendall(head + b"p" * body)
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(65536)
    reply_head, _, rest = reply.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in reply_head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        rest += sock.recv(65536)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--name")
    p.add_argument("--ip")
    p.add_argument("--sni")
    p.add_argument("--resolver", choices=["glibc", "raw", "raw-tcp"], default="glibc")
    p.add_argument("--qname-bytes", help="hex of one raw label, sent as <label>.test")
    p.add_argument("--tls", action="store_true")
    p.add_argument("--tls12", action="store_true", help="TLS 1.2 at most")
    p.add_argument("--ciphers", help="OpenSSL cipher list (TLS 1.2 suites)")
    p.add_argument("--pause-file", metavar="PATH",
                   help="after the --then requests, create PATH.waiting and wait for PATH")
    p.add_argument("--corked-chunk", type=int, default=0, metavar="BYTES",
                   help="send the request in writes of BYTES held back by TCP_CORK: many records per packet")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/")
    p.add_argument("--body", type=int, default=0)
    p.add_argument("--raw", action="store_true", help="send only BODY bytes, no HTTP head")
    p.add_argument("--ipv6", action="store_true", help="glibc: ask for IPv6 only")
    p.add_argument("--wait-file", help="start only once this file exists (a long-lived agent)")
    p.add_argument("--then", action="append", default=[], metavar="PATH:BODY",
                   help="a keep-alive request made before the last one")
    a = p.parse_args()
    if a.wait_file:
        for _ in range(3000):
            if os.path.exists(a.wait_file):
                break
            time.sleep(0.01)
    if a.ip:
        addr = a.ip
    elif a.qname_bytes:
        addr = raw_resolve([bytes.fromhex(a.qname_bytes), b"test"])
    elif a.resolver in ("raw", "raw-tcp"):
        labels = [label.encode() for label in a.name.split(".")]
        addr = raw_resolve(labels, tcp=a.resolver == "raw-tcp")
    else:
        family = socket.AF_INET6 if a.ipv6 else socket.AF_INET
        addr = socket.getaddrinfo(a.name, a.port, family, socket.SOCK_STREAM)[0][4][0]
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    sock = socket.create_connection((addr, a.port), timeout=30)
    host = a.sni or a.name or addr
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if a.tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if a.ciphers:
            ctx.set_ciphers(a.ciphers)
        sock = ctx.wrap_socket(sock, server_hostname=a.sni or a.name)
    for request in a.then:
        path, _, body = request.rpartition(":")
        keep_alive_request(sock, host, path, int(body))
    if a.pause_file:
        open(a.pause_file + ".waiting", "w").close()
        while not os.path.exists(a.pause_file):
            time.sleep(0.01)
    head = (
        f"POST {a.path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {a.body}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    if a.raw:
        head = b""
    data = head + b"p" * a.body
    if a.corked_chunk:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        for i in range(0, len(data), a.corked_chunk):
            sock.sendall(data[i:i + a.corked_chunk])
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
    else:
        sock.sendall(data)
    if a.raw:
        sock.shutdown(socket.SHUT_WR)
    received = 0
    while True:
        try:
            data = sock.recv(65536)
        except ssl.SSLZeroReturnError:
            break
        if not data:
            break
        received += len(data)
    sock.close()
    print(f"sent={len(head) + a.body} received={received}")


if __name__ == "__main__":
    sys.exit(main())
