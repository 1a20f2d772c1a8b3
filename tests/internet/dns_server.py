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

Names ending in `crafted.test` get answers built byte by byte, shapes no DNS
library writes (see `crafted_reply`): `loop` (compression pointers that
loop), `many` (1,000 answers), `dotlabel` (a label holding a '.', spelling
the question when joined), `long` (a name past 255 bytes through a
compression pointer) and `ctl` (an owner name with a NUL and upper case).
None binds the question name to an address.
"""

import argparse
import socket
import struct
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


# The lab's netpeer sink: the address the crafted answers point at.
CRAFTED_TARGET = bytes([203, 0, 113, 10])


def crafted_reply(query, shape):
    """A reply to the raw `query` in the crafted `shape`, or None."""
    end = 12
    while query[end]:
        end += 1 + query[end]
    question = query[12 : end + 5]
    out = bytearray(query[:2] + b"\x81\x80" + b"\x00\x01")
    records = []

    def record(owner, rtype, rdata, at):
        # `owner` and `rdata` may be callables of their own offset (pointers to themselves).
        owner = owner(at) if callable(owner) else owner
        rdata_at = at + len(owner) + 10
        rdata = rdata(rdata_at) if callable(rdata) else rdata
        return owner + struct.pack(">HHIH", rtype, 1, 300, len(rdata)) + rdata

    qname_ptr = b"\xc0\x0c"
    # "crafted.test" inside the question: after the first label.
    rest_ptr = struct.pack(">H", 0xC000 | (12 + 1 + query[12]))
    if shape == "loop":
        records = [
            # A CNAME whose target points at itself.
            (qname_ptr, 5, lambda at: struct.pack(">H", 0xC000 | at)),
            # An owner "a" followed by a pointer back to its own start: a.a.a...
            (lambda at: b"\x01a" + struct.pack(">H", 0xC000 | at), 1, CRAFTED_TARGET),
        ]
    elif shape == "many":
        # 1,000 addresses for the question; the target only in the last one.
        records = [(qname_ptr, 1, bytes([192, 0, 2, 1 + i % 254])) for i in range(999)]
        records.append((qname_ptr, 1, CRAFTED_TARGET))
    elif shape == "dotlabel":
        # One label "dotlabel.crafted", then "test": joined, the question.
        records = [(b"\x10dotlabel.crafted\x04test\x00", 1, CRAFTED_TARGET)]
    elif shape == "long":
        # Four 63-byte labels and a pointer to "crafted.test": 270 bytes.
        long_name = b"".join(b"\x3f" + bytes([c]) * 63 for c in b"wxyz") + rest_ptr
        # Its A record's owner points back at the CNAME's target, just before it.
        records = [
            (qname_ptr, 5, long_name),
            (lambda at: struct.pack(">H", 0xC000 | (at - len(long_name))), 1, CRAFTED_TARGET),
        ]
    elif shape == "ctl":
        # "CTL\0.crafted.test": the question once lowercased and stripped of the NUL.
        records = [(b"\x04CTL\x00" + rest_ptr, 1, CRAFTED_TARGET)]
    else:
        return None
    out += struct.pack(">HHH", len(records), 0, 0) + question
    for owner, rtype, rdata in records:
        out += record(owner, rtype, rdata, len(out))
    return bytes(out)


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
        qname = str(request.q.qname).lower()
        if qname.endswith(".crafted.test."):
            return crafted_reply(data, qname.split(".")[0])
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
