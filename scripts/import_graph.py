#!/usr/bin/env python3
"""The crate's module import graph (from `use crate::…` / `crate::…` paths, test modules
excluded): cycles between top-level modules, cycles between files (a parent module and its own
children do not count), and files with more than 600 lines of non-test code.

Usage: scripts/import_graph.py [REPO_DIR]   (prints the graph with -v)
"""
import os
import re
import sys

TEST_MOD = re.compile(r"#\[cfg\(test\)\]\s*(?:#\[allow[^\]]*\]\s*)*(?:#\[path[^\]]*\]\s*)?mod tests\s*[{;]")


def modules(root):
    out = {}
    for dp, _, fs in os.walk(os.path.join(root, "src")):
        if os.sep + "bin" in dp:
            continue
        for f in fs:
            if not f.endswith(".rs") or f.endswith("tests.rs") or f == "suite.rs":
                continue
            path = os.path.join(dp, f)
            rel = os.path.relpath(path, os.path.join(root, "src"))[:-3]
            if rel.endswith("/mod"):
                rel = rel[: -len("/mod")]
            if rel in ("lib", "main"):
                continue
            out[rel.replace("/", "::")] = path
    return out


def non_test(text):
    return TEST_MOD.split(text)[0]


def deps(text, mods, me):
    text = re.sub(
        r"use crate::\{([^}]*)\}",
        lambda m: " ".join("crate::" + x.strip() for x in m.group(1).split(",")),
        text,
    )
    found = set()
    for path in re.findall(r"crate::((?:[a-z_]+::)*[a-z_]+)", text):
        parts = path.split("::")
        for n in range(len(parts), 0, -1):
            cand = "::".join(parts[:n])
            if cand in mods:
                if cand != me and not me.startswith(cand + "::") and not cand.startswith(me + "::"):
                    found.add(cand)
                break
    return found


def cycles(graph):
    index, low, stack, on, res, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                res.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return res


def main():
    root = next((a for a in sys.argv[1:] if not a.startswith("-")), ".")
    verbose = "-v" in sys.argv
    mods = modules(root)
    files, tops = {}, {}
    for m, path in mods.items():
        text = non_test(open(path).read())
        d = deps(text, mods, m)
        files[m] = d
        top = m.split("::")[0]
        tops.setdefault(top, set()).update(x.split("::")[0] for x in d if x.split("::")[0] != top)
    if verbose:
        for m in sorted(tops):
            print(f"{m} -> {', '.join(sorted(tops[m]))}")
    print("cycles between top-level modules:", cycles(tops) or "none")
    print("cycles between files:", cycles(files) or "none")
    big = []
    for m, path in sorted(mods.items()):
        n = non_test(open(path).read()).count("\n")
        if n > 600:
            big.append(f"{os.path.relpath(path, root)} ({n})")
    print("files over 600 lines of non-test code:", ", ".join(big) or "none")


if __name__ == "__main__":
    main()
