#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tests/docs/check.py -- `make test-docs`: the documentation cannot drift or point outside.

1. Every path and method of docs/openapi.json has an endpoint heading in docs/API.md
   ("### GET /config"), and every endpoint heading of docs/API.md is in docs/openapi.json.
2. No tracked file refers to documents outside the repository: the parent directory's shared/
   folder, the former API notes page, or an API/NOTES/STYLE page other than docs/API.md; and none
   names a numbered issue ("issue 8", "issue #8"): the repository must stand on its own.
3. Every relative link in a tracked Markdown file points to a file that exists, and an #anchor
   to a heading of that file.
4. The C modules include one another without a cycle: each `#include "gk/<mod>.h"` in
   include/gk/*.h, src/*.[ch] and workers/*.[ch] is an edge from the including file's module to
   <mod> (docs/ARCHITECTURE.md: dependencies point one way). `check.py --includes` lists the edges.

Python standard library only. Exits 1 with one line per problem.
"""

import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SELF = "tests/docs/check.py"
METHODS = ("get", "post", "put", "patch", "delete")
HEADING = re.compile(r"^#{2,4}\s+(.*)$")
ENDPOINT = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE)\s+(/\S*)")
# Written so that this file does not match itself.
OUTSIDE = re.compile(r"\.\./" + r"shared|\bshared/")
NOTES_PAGE = re.compile(r"API-" + r"NOTES")
HANDOVER = re.compile(r"([\w./-]*?)\b(API|NOTES|STYLE)\.md\b")
ISSUE = re.compile(r"\b[Ii]ssues?\s+#?\d+")
GK_INCLUDE = re.compile(r'^\s*#\s*include\s+"gk/(\w+)\.h"', re.M)
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")

problems = []


def read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        data = f.read()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def tracked():
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    return [p for p in out.decode().split("\0") if p]


def api_endpoints():
    found = set()
    for line in read("docs/API.md").splitlines():
        m = HEADING.match(line)
        if m:
            for method, path in ENDPOINT.findall(m.group(1)):
                found.add((method, path.rstrip(",.")))
    return found


def openapi_endpoints():
    doc = json.loads(read("docs/openapi.json"))
    return {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops if m in METHODS}


def check_endpoints():
    api, spec = api_endpoints(), openapi_endpoints()
    if not spec:
        problems.append("docs/openapi.json: no paths")
    for method, path in sorted(spec - api):
        problems.append(f"docs/API.md: no heading for {method} {path} (it is in docs/openapi.json)")
    for method, path in sorted(api - spec):
        problems.append(f"docs/API.md: heading {method} {path} is not in docs/openapi.json")


def handover_ok(path, prefix, name):
    """A mention of <prefix><name>.md is fine only when it means docs/API.md."""
    if name != "API":
        return False
    here = os.path.dirname(path)
    for base in (here, ""):
        if os.path.normpath(os.path.join(base, prefix + "API.md")) == "docs/API.md":
            return True
    return False


def check_references(files):
    for path in files:
        if path == SELF:
            continue
        text = read(path)
        if text is None:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            where = f"{path}:{n}"
            if OUTSIDE.search(line):
                problems.append(f"{where}: refers to the shared folder outside the repository")
            if NOTES_PAGE.search(line):
                problems.append(f"{where}: refers to the removed API notes page (use docs/API.md)")
            for m in HANDOVER.finditer(line):
                if not NOTES_PAGE.search(m.group(0)) and not handover_ok(path, m.group(1), m.group(2)):
                    problems.append(f"{where}: refers to {m.group(0)}, which is not docs/API.md")
            m = ISSUE.search(line)
            if m:
                problems.append(f"{where}: names a numbered issue ({m.group(0)!r}); say what it is instead")


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    s = re.sub(r"[`*_]|\[|\]|\([^)]*\)", lambda m: "_" if m.group(0) == "_" else "", heading)
    s = s.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path):
    text = read(path) or ""
    found, seen = set(), {}
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m and not in_code:
            s = slug(m.group(1))
            k = seen.get(s, 0)
            seen[s] = k + 1
            found.add(s if k == 0 else f"{s}-{k}")
    return found


def check_links(files):
    present = set(files)
    for path in files:
        if not path.endswith(".md"):
            continue
        text = read(path) or ""
        in_code = False
        for n, line in enumerate(text.splitlines(), 1):
            if line.startswith("```"):
                in_code = not in_code
            if in_code:
                continue
            for target in LINK.findall(line):
                if re.match(r"^[a-z]+:", target):
                    continue
                file, _, frag = target.partition("#")
                dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
                if file and dest not in present and not os.path.isdir(os.path.join(ROOT, dest)):
                    problems.append(f"{path}:{n}: link to {target}: {dest} is not a tracked file")
                    continue
                if frag and dest.endswith(".md") and frag not in anchors(dest):
                    problems.append(f"{path}:{n}: link to {target}: no heading #{frag} in {dest}")


def module_of(path, text):
    """include/gk/<mod>.h and src/<mod>_int.h are <mod>'s; a source file belongs to the module
    whose header it includes first (its contract: src/h_queue.c is handlers'), else to its name
    (src/main.c); files under workers/ are the worker's."""
    d, name = os.path.split(path)
    stem = os.path.splitext(name)[0]
    if d == "workers":
        return "worker"
    if d == "include/gk":
        return stem
    if name.endswith("_int.h"):
        return stem[: -len("_int")]
    first = re.search(r'^\s*#\s*include\s+[<"]([^>"]+)[>"]', text, re.M)
    if first and first.group(1).startswith("gk/"):
        return os.path.splitext(first.group(1)[3:])[0]
    return stem


def include_edges(files):
    edges = {}
    for path in files:
        d, name = os.path.split(path)
        if d not in ("include/gk", "src", "workers") or not name.endswith((".c", ".h")):
            continue
        text = read(path) or ""
        mod = module_of(path, text)
        for dep in GK_INCLUDE.findall(text):
            if dep != mod:
                edges.setdefault(mod, {}).setdefault(dep, []).append(path)
    return edges


def check_include_cycles(files):
    edges = include_edges(files)
    state, stack = {}, []

    def visit(mod):
        state[mod] = 1
        stack.append(mod)
        for dep in sorted(edges.get(mod, {})):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                how = "; ".join(f"{a} -> {b} ({', '.join(edges[a][b])})" for a, b in zip(cycle, cycle[1:]))
                problems.append(f"include cycle among modules: {' -> '.join(cycle)}: {how}")
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[mod] = 2

    for mod in sorted(edges):
        if mod not in state:
            visit(mod)
    return edges


def main():
    files = tracked()
    if sys.argv[1:] == ["--includes"]:
        for mod, deps in sorted(include_edges(files).items()):
            print(f"{mod} -> {' '.join(sorted(deps))}")
        return 0
    check_endpoints()
    check_references(files)
    check_links(files)
    edges = check_include_cycles(files)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"check.py: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check.py: docs/API.md and docs/openapi.json agree ({len(openapi_endpoints())} operations); "
          f"{len(files)} tracked files refer to nothing outside the repository; links resolve; "
          f"{len(edges)} C modules include one another without a cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
