#!/usr/bin/env python3
"""Fails when two modules of a crate import each other.

    scripts/module-cycles.py crates/backup-core/src [more src dirs...]

A module is a top-level file of `src/` with its folder (`source.rs` and
`source/`), except that each operation under `ops/` counts on its own. An
import is any `crate::NAME` path or `use crate::{NAME, ...}` item outside
the file's `mod tests`. `error` is left out: every module may use it and
it uses none.
"""
import itertools
import os
import re
import sys


def module_of(rel):
    parts = rel[:-3].split("/")
    if parts[0] == "ops" and len(parts) > 1:
        return "ops::" + parts[1]
    return None if parts[0] in ("lib", "main") else parts[0]


def imports(src):
    edges = {}
    for dirpath, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            module = module_of(os.path.relpath(path, src))
            if module is None:
                continue
            text = open(path, encoding="utf-8").read().split("#[cfg(test)]\nmod tests")[0]
            found = set()
            for top, sub in re.findall(r"crate::([a-z_]+)(?:::([a-z_]+))?", text):
                found.add("ops::" + sub if top == "ops" and sub else top)
            for block in re.findall(r"use crate::\{([^}]*)\}", text, re.S):
                found.update(re.findall(r"(?:^|,)\s*([a-z_]+)", block))
            found -= {module, "error"}
            if module.startswith("ops::"):
                found.discard("ops")
            edges.setdefault(module, set()).update(found)
    return edges


status = 0
for src in sys.argv[1:]:
    edges = imports(src)
    for a, b in itertools.combinations(sorted(edges), 2):
        if b in edges[a] and a in edges.get(b, ()):
            print(f"{src}: `{a}` and `{b}` import each other", file=sys.stderr)
            status = 1
sys.exit(status)
