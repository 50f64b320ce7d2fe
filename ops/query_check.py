#!/usr/bin/env python3
"""Evaluates every expression of the Grafana dashboard and of the alert rules through a live
Prometheus's query API (Grafana cannot run here; this is the next best check):

  ops/query_check.py PROMETHEUS_URL [SALE_ID]

- a dashboard query must run without error and return at least one series; `$sale` is
  replaced by the given sale (or `.*`, Grafana's "All"), `$__rate_interval` by 1m;
- an alert's expression is split at its top-level `and`/`or`/`unless`, and each operand is
  evaluated without its final comparison (`> 20`, `!= 0`): an alert that does not fire
  returns nothing, so it is its measured side that must exist. A misspelled metric or label
  returns no series and fails here.
Prints one line per expression and exits 1 when one failed.
"""
import json
import re
import sys
import urllib.parse
import urllib.request

OPS = __file__.rsplit("/", 1)[0]
COMPARISON = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*(bool\s+)?-?[0-9.]+(e-?[0-9]+)?\s*$")


def query(prom, expr):
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        return None, json.load(e).get("error", str(e))
    except OSError as e:
        return None, str(e)
    if body.get("status") != "success":
        return None, body.get("error", "no success")
    return body["data"]["result"], None


def top_level_split(expr):
    """The operands of top-level set operators (`and`, `or`, `unless`, with `on (...)`)."""
    parts, depth, start, i = [], 0, 0, 0
    words = re.compile(r"\s(and|or|unless)(\s+(on|ignoring)\s*\([^)]*\))?\s")
    while i < len(expr):
        c = expr[i]
        if c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        elif depth == 0:
            m = words.match(expr, i)
            if m:
                parts.append(expr[start:i])
                start = i = m.end()
                continue
        i += 1
    parts.append(expr[start:])
    return [p.strip() for p in parts if p.strip()]


def measured_side(operand):
    """An operand without its final top-level comparison to a number."""
    m = COMPARISON.search(operand)
    if not m:
        return operand
    head = operand[: m.start()]
    return head if head.count("(") == head.count(")") else operand


def dashboard_exprs(sale):
    d = json.load(open(f"{OPS}/grafana/seckill.json"))
    out = []
    for panel in d["panels"]:
        for t in panel.get("targets", []):
            expr = t["expr"].replace("$sale", sale).replace("$__rate_interval", "1m")
            out.append((f"panel {panel['title']!r}", expr))
    return out


def alert_exprs():
    """(name, expr) of each rule in alerts.yml (a small reader: `- alert:` then `expr:`,
    possibly a `|` block)."""
    lines = open(f"{OPS}/alerts.yml").read().splitlines()
    out, name, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"\s*- alert:\s*(\S+)", line)
        if m:
            name = m.group(1)
        m = re.match(r"(\s*)expr:\s*(.*)$", line)
        if m and name:
            if m.group(2).strip() == "|":
                indent, body = None, []
                i += 1
                while i < len(lines):
                    l = lines[i]
                    if l.strip() and indent is None:
                        indent = len(l) - len(l.lstrip())
                    if l.strip() and len(l) - len(l.lstrip()) < (indent or 0):
                        break
                    body.append(l.strip())
                    i += 1
                out.append((name, " ".join(b for b in body if b)))
                continue
            out.append((name, m.group(2).strip()))
        i += 1
    return out


def main():
    prom = sys.argv[1].rstrip("/")
    sale = sys.argv[2] if len(sys.argv) > 2 else ".*"
    failed = 0
    checks = dashboard_exprs(sale)
    for name, expr in alert_exprs():
        for operand in top_level_split(expr):
            checks.append((f"alert {name}", measured_side(operand)))
    for what, expr in checks:
        result, err = query(prom, expr)
        if err or not result:
            failed += 1
            print(f"FAIL {what}: {expr}: {err or 'no series'}")
        else:
            print(f"ok   {what}: {expr} ({len(result)} series)")
    print(f"query_check: {len(checks) - failed} of {len(checks)} expressions return series")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
