#!/usr/bin/env python3
"""Writes the tls_records fuzz target's seeds: real TLS sessions (Python's
ssl, the system OpenSSL) run through memory BIOs, each flight recorded as a
segment the way it would leave: `python3 fuzz/tls_records_seeds.py`."""
import os
import ssl
import struct
import subprocess
import tempfile

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "tls_records")


def session(version, requests):
    with tempfile.TemporaryDirectory() as tmp:
        key, crt = os.path.join(tmp, "k.pem"), os.path.join(tmp, "c.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", crt, "-days", "1", "-subj", "/CN=api.test"],
            check=True, capture_output=True)
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(crt, key)
        client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client_ctx.load_verify_locations(crt)
        for ctx in (server_ctx, client_ctx):
            ctx.minimum_version = ctx.maximum_version = version
        c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
        client = client_ctx.wrap_bio(c_in, c_out, server_hostname="api.test")
        server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
        segments = []

        def pump():
            moved = True
            while moved:
                moved = False
                data = c_out.read()
                if data:
                    segments.append((0, data))
                    s_in.write(data)
                    moved = True
                data = s_out.read()
                if data:
                    segments.append((1, data))
                    c_in.write(data)
                    moved = True

        for side in (client, server) * 4:
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            pump()
        for request, response in requests:
            client.write(request)
            pump()
            server.read(65536)
            server.write(response)
            pump()
            while True:
                try:
                    client.read(65536)
                except ssl.SSLWantReadError:
                    break
        return segments


def write(name, segments, seed=7):
    table = b"".join(struct.pack("<BH", way, len(data)) for way, data in segments)
    body = b"".join(data for _, data in segments)
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(bytes([len(segments)]) + table + bytes([seed]) + body)


head = b"POST /v1/messages HTTP/1.1\r\nHost: api.test\r\nContent-Length: 300\r\n\r\n"
small = [(head + b"x" * 300, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")]
stream = [(head + b"y" * 300, b"data: " + b"z" * 40 + b"\n\n"), (b"a" * 20000, b"b" * 17000)]
write("tls13_request.bin", session(ssl.TLSVersion.TLSv1_3, small))
write("tls13_two_requests.bin", session(ssl.TLSVersion.TLSv1_3, stream), seed=200)
write("tls12_request.bin", session(ssl.TLSVersion.TLSv1_2, small))
