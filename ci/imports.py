#!/usr/bin/python3
"""Prints which folders of src/ use which: the import picture of the tree.

Reads every `use crate::...` line and every inline `crate::name::` path in
src/, and maps each file to its folder (`src/core/engine.rs` is `core`;
`src/conf.rs` is `conf.rs`). A line `core -> nginx, os.rs` says that code
in core/ names something in nginx/ and in os.rs. Cycles between folders are
listed at the end. Run: ci/imports.sh (or /usr/bin/python3 ci/imports.py);
`ci/imports.sh REV` prints the picture of src/ at git revision REV (for
example 927b308, the tree before the restructuring of issue 16), and
`ci/imports.sh --check` (run by ci/test.sh) fails when a folder names one
at its own level or above in LEVELS, or when there is a cycle.
"""
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


# The layout's one direction: each folder may name only those on lower
# levels, never a sibling (cgi/, wsgi/ and asgi/ share a level).
LEVELS = [["os.rs"], ["nginx"], ["core"], ["python"], ["cgi", "wsgi", "asgi"], ["pool"], ["status"], ["conf.rs"], ["module.rs"]]
LEVEL = {name: i for i, names in enumerate(LEVELS) for name in names}


def room(path):
    rel = os.path.relpath(path, ROOT)
    parts = rel.split(os.sep)
    return parts[0] if len(parts) > 1 else parts[0]


def target_room(name):
    return name if os.path.isdir(os.path.join(ROOT, name)) else name + ".rs"


def main():
    edges = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            src = room(path)
            text = open(path, encoding="utf-8").read()
            # `use crate::{a, b::c}` and `crate::x::y` anywhere.
            names = set(re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", text))
            for group in re.findall(r"\buse crate::\{([^}]*)\}", text):
                names.update(re.findall(r"(?:^|,)\s*([a-z_][a-z0-9_]*)", group))
            for name in names:
                dst = target_room(name)
                if dst != src and os.path.exists(os.path.join(ROOT, dst)):
                    edges.setdefault(src, set()).add(dst)
    rooms = sorted(set(edges) | {d for ds in edges.values() for d in ds})
    width = max(len(r) for r in rooms)
    for r in rooms:
        print("%-*s -> %s" % (width, r, ", ".join(sorted(edges.get(r, ()))) or "(nothing of ours)"))
    # Cycles: pairs and longer, by depth-first search over folders.
    cycles = set()

    def walk(start, node, path):
        for nxt in edges.get(node, ()):
            if nxt == start:
                cycle = path[:]
                i = cycle.index(min(cycle))
                cycles.add(tuple(cycle[i:] + cycle[:i]))
            elif nxt not in path and len(path) < len(rooms):
                walk(start, nxt, path + [nxt])

    for r in rooms:
        walk(r, r, [r])
    print()
    if cycles:
        print("cycles (%d):" % len(cycles))
        shortest = sorted(cycles, key=lambda c: (len(c), c))
        for c in shortest[:12]:
            print("  " + " -> ".join(c + (c[0],)))
        if len(cycles) > 12:
            print("  ... and %d longer or more" % (len(cycles) - 12))
    else:
        print("no cycles between folders")
    wrong = ["%s -> %s" % (a, b) for a in rooms for b in sorted(edges.get(a, ()))
             if a in LEVEL and b in LEVEL and LEVEL[b] >= LEVEL[a]]
    unplaced = [r for r in rooms if r not in LEVEL and r != "lib.rs"]
    if wrong:
        print("against the layout's direction (%s): %s" % (" -> ".join("/".join(l) for l in reversed(LEVELS)), ", ".join(wrong)))
    if unplaced:
        print("not in LEVELS (place them in ci/imports.py): %s" % ", ".join(unplaced))
    return 1 if cycles or wrong or unplaced else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(main())
    if len(sys.argv) > 1:
        top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with tempfile.TemporaryDirectory() as tmp:
            archive = subprocess.run(["git", "-C", top, "archive", sys.argv[1], "src"], check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            ROOT = os.path.join(tmp, "src")
            print("src/ at %s:\n" % sys.argv[1])
            sys.exit(main())
    sys.exit(main())
