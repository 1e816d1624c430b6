#!/usr/bin/env python3
"""Checks deploy/Dockerfile without building it (the base images are not reachable offline):
multi-stage, a minimal runtime stage that runs as a non-root user, exec-form ENTRYPOINT, no
remote ADD, the locked release build, and every COPY source present in the repository and not
excluded by .dockerignore. Prints the build stage's COPY sources, one per line, for
scripts/check-deploy.sh to build exactly those.

  dockerfile.py REPO_ROOT
"""
import fnmatch
import json
import os
import sys

from dockerfile_parse import DockerfileParser

root = sys.argv[1]
parser = DockerfileParser(path=os.path.join(root, "deploy", "Dockerfile"))
problems = []
stages = []
for instruction in parser.structure:
    if instruction["instruction"] == "FROM":
        stages.append([])
    if stages:
        stages[-1].append(instruction)

if len(stages) < 2:
    problems.append("not a multi-stage build")
build, runtime = stages[0], stages[-1]


def values(stage, name):
    return [i["value"] for i in stage if i["instruction"] == name]


runs = " ".join(values(build, "RUN"))
if "cargo build --release --locked" not in runs:
    problems.append("the build stage does not run cargo build --release --locked")
runtime_base = runtime[0]["value"].split()[0]
if not any(minimal in runtime_base for minimal in ("distroless", "scratch", "-slim", "alpine")):
    problems.append(f"runtime base {runtime_base} is not a minimal image")
users = values(runtime, "USER")
if not users or users[-1].split(":")[0] in ("root", "0"):
    problems.append("the runtime stage does not switch to a non-root user")
if values(runtime, "RUN"):
    problems.append("the runtime stage runs commands (it should only copy)")
entrypoint = values(runtime, "ENTRYPOINT")
try:
    if not entrypoint or not isinstance(json.loads(entrypoint[-1]), list):
        raise ValueError
except ValueError:
    problems.append("ENTRYPOINT is not in exec form")
for stage in stages:
    for value in values(stage, "ADD"):
        if "://" in value:
            problems.append(f"ADD from a URL: {value}")

ignored = [line.strip() for line in open(os.path.join(root, ".dockerignore")) if line.strip() and not line.startswith("#")]
if "target" not in ignored:
    problems.append(".dockerignore does not exclude target/")
build_sources = []
for stage in stages:
    for value in values(stage, "COPY"):
        parts = value.split()
        if any(p.startswith("--from") for p in parts):
            continue
        for source in parts[:-1]:
            if not os.path.exists(os.path.join(root, source)):
                problems.append(f"COPY source {source} is not in the repository")
            if any(fnmatch.fnmatch(source, pattern) for pattern in ignored):
                problems.append(f"COPY source {source} is excluded by .dockerignore")
            if stage is build:
                build_sources.append(source)

if problems:
    sys.exit("\n".join(f"deploy/Dockerfile: {p}" for p in problems))
print("\n".join(build_sources))
