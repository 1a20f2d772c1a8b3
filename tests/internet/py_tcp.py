"""A plain TCP client as a script agent: python3 .../bin/aider HOST PORT N
[--sleep S]. Sleeps S seconds first (default 0), connects, sends N bytes,
shuts its side down, reads to EOF and prints the bytes it received."""

import socket
import sys
import time

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if "--sleep" in sys.argv:
    time.sleep(float(sys.argv[sys.argv.index("--sleep") + 1]))
s = socket.create_connection((host, port))
s.sendall(b"x" * n)
s.shutdown(socket.SHUT_WR)
got = 0
while b := s.recv(65536):
    got += len(b)
print(got)
