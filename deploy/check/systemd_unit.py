#!/usr/bin/env python3
"""Checks that deploy/systemd/dotgate.service runs dotgate as a non-root user with
CAP_NET_BIND_SERVICE as its only capability (SECURITY.md's promise); systemd-analyze verify
checks only that the unit parses.

  systemd_unit.py UNIT_FILE

Prints each problem found and exits 1, or exits 0 when there is none.
"""
import sys

settings = {}
with open(sys.argv[1]) as f:
    for line in f:
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())


def last(key):
    return settings.get(key, [""])[-1]


problems = []
user = last("User")
if last("DynamicUser") not in ("yes", "true", "1") and user in ("", "root", "0"):
    problems.append("runs as root: neither DynamicUser=yes nor a User= other than root")
for key in ("CapabilityBoundingSet", "AmbientCapabilities"):
    if last(key).split() != ["CAP_NET_BIND_SERVICE"]:
        problems.append(f"{key}={last(key)!r}, not exactly CAP_NET_BIND_SERVICE")
if last("NoNewPrivileges") not in ("yes", "true", "1"):
    problems.append("NoNewPrivileges is not set")
for problem in problems:
    print(f"{sys.argv[1]}: {problem}")
sys.exit(1 if problems else 0)
