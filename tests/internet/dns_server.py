#!/usr/bin/env python3
"""DNS server of agentmon's test internet (UDP and TCP).

    dns_server.py --listen ADDR [--listen ADDR] --ready FILE
                  [--record NAME=A:ADDR] [--record NAME=AAAA:ADDR] [--record NAME=CNAME:TARGET]
                  [--ttl SECONDS]

Names ending in `hostile.test` get attacker-shaped answers (what a
malicious resolver or on-path attacker can send a client): a CNAME to a name
with quotes, braces, newlines and control bytes, an overlong name, and an
answer name that is not the question. Every such chain still ends in an
A record, so the client connects somewhere and agentmon must cope.
"""

import argparse
import socket
import socketserver
import sys
import threading

from dnslib import AAAA, CNAME, QTYPE, RCODE, RR, A, DNSLabel, DNSRecord

HOSTILE_LABELS = [
    b'evil"} 1\n# TYPE x counter',
    b"ctrl\x00\x01\x1b[31m",
    b"brace{label=\"x\"}",
    b"a" * 63,
]


def parse_records(specs):
    zone = {}
    for spec in specs:
        name, _, rest = spec.partition("=")
        rtype, _, value = rest.partition(":")
        zone.setdefault(name.lower().rstrip(".") + ".", []).append((rtype.upper(), value))
    return zone


def hostile_name():
    # Overlong too: 5 labels of 63 bytes is past the 253-byte limit of a name.
    return DNSLabel(HOSTILE_LABELS + [b"b" * 63, b"c" * 63, b"test"])


def answer(request, zone, ttl, hostile_target):
    reply = request.reply()
    qname = str(request.q.qname).lower()
    qtype = QTYPE[request.q.qtype]
    if qname.endswith("hostile.test."):
        # question -> CNAME hostile -> A: the chain runs through a bad name.
        bad = hostile_name()
        reply.add_answer(RR(request.q.qname, QTYPE.CNAME, rdata=CNAME(bad), ttl=ttl))
        if qtype in ("A", "ANY"):
            reply.add_answer(RR(bad, QTYPE.A, rdata=A(hostile_target), ttl=ttl))
        return reply
    # A question echoed with bytes no hostname has gets an answer anyway.
    if any(b < 0x20 or b in b'"{}\\' for label in request.q.qname.label for b in label):
        if qtype in ("A", "ANY"):
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(hostile_target), ttl=ttl))
        return reply
    seen, name = 0, qname
    while seen < 8:
        seen += 1
        records = zone.get(name)
        if not records:
            break
        cname = [v for t, v in records if t == "CNAME"]
        if cname:
            target = cname[0].lower().rstrip(".") + "."
            reply.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME(target), ttl=ttl))
            name = target
            continue
        for rtype, value in records:
            if rtype == qtype == "A":
                reply.add_answer(RR(name, QTYPE.A, rdata=A(value), ttl=ttl))
            elif rtype == qtype == "AAAA":
                reply.add_answer(RR(name, QTYPE.AAAA, rdata=AAAA(value), ttl=ttl))
        break
    if not reply.rr and qname not in zone:
        reply.header.rcode = RCODE.NXDOMAIN
    return reply


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", action="append", required=True)
    p.add_argument("--record", action="append", default=[])
    p.add_argument("--ttl", type=int, default=300)
    p.add_argument("--hostile-target", default="203.0.113.20")
    p.add_argument("--ready", required=True)
    args = p.parse_args()
    zone = parse_records(args.record)

    def respond(data):
        try:
            request = DNSRecord.parse(data)
        except Exception as e:  # a broken query gets no answer
            print(f"dns_server: bad query: {e}", file=sys.stderr)
            return None
        return answer(request, zone, args.ttl, args.hostile_target).pack()

    class Udp(socketserver.BaseRequestHandler):
        def handle(self):
            data, sock = self.request
            out = respond(data)
            if out:
                sock.sendto(out, self.client_address)

    class Tcp(socketserver.BaseRequestHandler):
        def handle(self):
            while True:
                head = self.request.recv(2)
                if len(head) < 2:
                    return
                size = int.from_bytes(head, "big")
                data = b""
                while len(data) < size:
                    chunk = self.request.recv(size - len(data))
                    if not chunk:
                        return
                    data += chunk
                out = respond(data)
                if out:
                    self.request.sendall(len(out).to_bytes(2, "big") + out)

    servers = []
    for addr in args.listen:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        for base, handler in ((socketserver.ThreadingUDPServer, Udp), (socketserver.ThreadingTCPServer, Tcp)):
            cls = type("S", (base,), {"address_family": family, "allow_reuse_address": True, "daemon_threads": True})
            server = cls((addr, 53), handler)
            servers.append(server)
            threading.Thread(target=server.serve_forever, daemon=True).start()
    open(args.ready, "w").close()
    threading.Event().wait()


if __name__ == "__main__":
    main()
