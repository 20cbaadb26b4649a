#!/usr/bin/python3
"""Lists the file descriptors it started with."""
import os

# The listing's own descriptor is closed again once listdir returns.
fds = sorted(int(f) for f in os.listdir("/proc/self/fd") if os.path.exists("/proc/self/fd/" + f))
print("Content-Type: text/plain")
print()
print(" ".join(map(str, fds)))
