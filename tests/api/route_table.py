#!/usr/bin/env python3
"""The description is complete: every route the backend's route table knows
(backend/src/http/route.rs) and every route the edge's allow-list serves (nginx.conf) is in
docs/openapi.yaml with its methods, and the description has no route that neither serves.

  tests/api/route_table.py        (from the repository root; exit 0 when they agree)

Paths are compared with their parameters unnamed (/api/sales/{} ...); HEAD goes with GET.
The edge's methods come from each location's `set $allow` (Lua-answered locations take
POST, the queue GET and POST, as gate.lua refuses the others).
"""
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def unnamed(path):
    return re.sub(r"\{[^}]+\}", "{}", path)


def described():
    spec = yaml.safe_load(open(os.path.join(ROOT, "docs/openapi.yaml")))
    out = set()
    for path, item in spec["paths"].items():
        for method in item:
            if method in ("get", "post", "patch", "put", "delete"):
                out.add((method.upper(), unnamed(path)))
    return out


def backend():
    """(method, path) of every arm of Route::parse."""
    src = open(os.path.join(ROOT, "backend/src/http/route.rs")).read()
    body = src[src.index("let mut options = match segments.as_slice()"):src.index("_ => return Err")]
    out = set()
    # Each arm: `[segments] => get(..)`, `=> post(..)`, or `=> [ (Method::X, ..), ... ]`
    # (possibly inside a block); an arm ends where the next `[` + `"` segment list begins.
    arms = re.split(r'\n\s*(?=\["(?:api|admin|metrics|healthz|internal))', body)
    for arm in arms:
        head = re.match(r'\[([^\]]*)\]\s*=>(.*)', arm, re.S)
        if not head:
            continue
        segs, rest = head.groups()
        path = "/" + "/".join(s.strip().strip('"') if s.strip().startswith('"') else "{}"
                              for s in segs.split(","))
        simple = re.match(r"\s*(get|post)\(", rest)
        methods = [simple.group(1).upper()] if simple else re.findall(r"Method::([A-Z]+)", rest)
        out.update((method, path) for method in methods)
    return out


LUA_METHODS = {"pow": ["POST"], "captcha": ["POST"], "path": ["POST"], "buy/{}": ["POST"],
               "queue": ["GET", "POST"]}


def edge():
    """(method, path) of every client location of nginx.conf's API allow-list."""
    conf = open(os.path.join(ROOT, "nginx.conf")).read()
    out = set()
    for m in re.finditer(r'location (=|~) (?:"([^"]+)"|(\S+)) \{(.*?)\n        \}', conf, re.S):
        kind, quoted, bare, block = m.groups()
        pattern = quoted or bare
        if not re.match(r"\^?/(api|admin|edge|metrics)", pattern):
            continue
        paths = [pattern] if kind == "=" else expand(pattern)
        allow = re.search(r'set \$allow "([^"]+)"', block)
        for path in paths:
            if allow:
                methods = [x for x in allow.group(1).split(", ") if x != "HEAD"]
            else:
                tail = path.split("/{}/", 1)[-1] if path.startswith("/api/sales/{}/") else ""
                methods = LUA_METHODS.get(tail)
                if methods is None:
                    continue  # a catch-all (404) location
            out.update((meth, path) for meth in methods)
    return out


def expand(regex):
    """A location regex as the paths it serves: ids become {}, (a|b) alternatives expand."""
    r = regex.lstrip("^").rstrip("$")
    r = re.sub(r"\(?(?:\?<[a-z_]+>)?\[1-9\]\[0-9\]\{0,\d+\}\)?", "{}", r)
    r = re.sub(r"\(\[0-9A-Za-z_-\]\{1,128\}\)", "{}", r)
    alt = re.search(r"\(([a-z|]+)\)", r)
    if alt:
        return [p for a in alt.group(1).split("|") for p in expand(r[:alt.start()] + a + r[alt.end():])]
    return [r]


def main():
    spec, back, front = described(), backend(), edge()
    failed = 0
    for name, served in (("backend route.rs", back), ("edge nginx.conf", front)):
        for route in sorted(served - spec):
            print(f"FAIL {name} serves {route[0]} {route[1]}, the description lacks it")
            failed += 1
    for route in sorted(spec - back - front):
        print(f"FAIL the description has {route[0]} {route[1]}, neither the backend nor the edge serves it")
        failed += 1
    print(f"route table: {len(spec)} described, {len(back)} in route.rs, {len(front)} at the edge, {failed} disagreements")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
