#!/usr/bin/env python3
"""Python client of agentmon's tests: resolves a name (glibc getaddrinfo, or
its own raw DNS query like c-ares or Go do), connects over TLS (with SNI) or
plain HTTP, POSTs N bytes and reads the reply to EOF. With --then, it first
makes each request there on the same connection (keep-alive), one at a time.

    py_client.py --name NAME | --ip ADDR [--sni NAME] [--resolver glibc|raw|raw-tcp]
                 [--qname-bytes HEX] [--tls] [--raw] --port P --path PATH --body N
                 [--then PATH:BODY ...]
                 [--query NAME ...] [--query-tcp NAME ...]
                 [--big-hello PAD [--sni-last] --write-size N] [--host-hex HEX]
                 [--h2-authority-hex HEX]

--query asks NAME's A record with one raw query and does not read the
answer (hostile answers are for agentmon, not for this client); the bytes
each way are printed as `dns_udp=SENT:RECEIVED dns_tcp=SENT:RECEIVED`.
"""

import argparse
import os
import socket
import ssl
import struct
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


def raw_query(name, tcp):
    """Sends one A query for NAME to the resolver; returns (bytes sent, bytes received)."""
    from dnslib import QTYPE, DNSQuestion, DNSRecord

    server = next(
        line.split()[1] for line in open("/etc/resolv.conf") if line.startswith("nameserver")
    )
    query = DNSRecord(q=DNSQuestion(name, QTYPE.A)).pack()
    if not tcp:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(query, (server, 53))
        data, _ = s.recvfrom(65535)
        s.close()
        return len(query), len(data)
    s = socket.create_connection((server, 53), timeout=5)
    s.sendall(len(query).to_bytes(2, "big") + query)
    data = b""
    while len(data) < 2 or len(data) < 2 + int.from_bytes(data[:2], "big"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return 2 + len(query), len(data)


def big_client_hello(sni, pad, sni_last):
    """A TLS 1.3 ClientHello that OpenSSL accepts, with an unknown (GREASE)
    extension of PAD bytes; the server_name extension first or, with
    SNI_LAST, after the padding. Carried in records of at most 16 KiB."""
    def ext(kind, body):
        return struct.pack(">HH", kind, len(body)) + body

    name = sni.encode()
    server_name = ext(0, struct.pack(">HBH", len(name) + 3, 0, len(name)) + name)
    # x25519's base point: a valid public key, the same in every run.
    key = bytes([9]) + bytes(31)
    others = (
        ext(10, struct.pack(">HH", 2, 0x001D))
        + ext(13, struct.pack(">HHH", 4, 0x0403, 0x0804))
        + ext(43, bytes([2, 3, 4]))
        + ext(51, struct.pack(">HHH", 36, 0x001D, 32) + key)
        + ext(0x1A1A, bytes(pad))
    )
    extensions = others + server_name if sni_last else server_name + others
    body = (
        b"\x03\x03" + bytes(range(32)) + b"\x20" + bytes(range(32, 64))
        + struct.pack(">HHHH", 6, 0x1301, 0x1302, 0x1303) + b"\x01\x00"
        + struct.pack(">H", len(extensions)) + extensions
    )
    hello = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"".join(
        b"\x16\x03\x01" + struct.pack(">H", len(hello[i:i + 16384])) + hello[i:i + 16384]
        for i in range(0, len(hello), 16384)
    )


def h2_request(authority):
    """The HTTP/2 preface, an empty SETTINGS frame and one HEADERS frame
    (END_STREAM) for POST /v1/messages with AUTHORITY, every field an HPACK
    literal without indexing and without Huffman coding."""
    def literal(name, value):
        assert len(name) < 127 and len(value) < 127
        return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value

    block = (
        literal(b":method", b"POST") + literal(b":scheme", b"https")
        + literal(b":path", b"/v1/messages") + literal(b":authority", authority)
    )
    settings = struct.pack(">I", 0)[1:] + b"\x04\x00" + struct.pack(">I", 0)
    headers = len(block).to_bytes(3, "big") + b"\x01\x05" + struct.pack(">I", 1) + block
    return b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings + headers


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
    p.add_argument("--query", action="append", default=[], metavar="NAME",
                   help="first ask NAME's A record over UDP, not reading the answer")
    p.add_argument("--query-tcp", action="append", default=[], metavar="NAME",
                   help="the same over TCP")
    p.add_argument("--big-hello", type=int, metavar="PAD",
                   help="send only a ClientHello with a PAD-byte extension (and --sni), no TLS")
    p.add_argument("--sni-last", action="store_true", help="--big-hello: server_name after the padding")
    p.add_argument("--write-size", type=int, default=0, metavar="N",
                   help="send in writes of N bytes with TCP_NODELAY: a segment each")
    p.add_argument("--host-hex", help="the Host header's value, as hex of raw bytes")
    p.add_argument("--h2-authority-hex",
                   help="over --tls, send an HTTP/2 request with this :authority (hex) instead")
    a = p.parse_args()
    dns = {"udp": [0, 0], "tcp": [0, 0]}
    for proto, names in (("udp", a.query), ("tcp", a.query_tcp)):
        for name in names:
            sent, received = raw_query(name, proto == "tcp")
            dns[proto][0] += sent
            dns[proto][1] += received
    if a.query or a.query_tcp:
        print(" ".join(f"dns_{proto}={s}:{r}" for proto, (s, r) in dns.items()))
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
    host = bytes.fromhex(a.host_hex) if a.host_hex else host.encode()
    head = (
        f"POST {a.path} HTTP/1.1\r\nHost: ".encode() + host
        + f"\r\nContent-Length: {a.body}\r\nConnection: close\r\n\r\n".encode()
    )
    if a.raw:
        head = b""
    data = head + b"p" * a.body
    if a.big_hello is not None:
        head, data = b"", big_client_hello(a.sni, a.big_hello, a.sni_last)
        a.body, a.raw = len(data), True
    elif a.h2_authority_hex:
        head, data = b"", h2_request(bytes.fromhex(a.h2_authority_hex))
        a.body = len(data)
    if a.write_size:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(data), a.write_size):
            sock.sendall(data[i:i + a.write_size])
    elif a.corked_chunk:
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
