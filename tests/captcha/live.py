#!/usr/bin/env python3
"""Live reading: a trained model (tests/captcha/trained.py) against the running edge.

  live.py --edge URL --admin-token FILE --model MODEL [--n N]

Creates an unlisted race sale that starts now, then N times, as a shopper's browser would
(each time a new shopper, from an address of its own): signs in, asks for a proof of work and
solves it, fetches a picture through the edge, reads it with the model, and answers. A
picture counts as read when the edge hands out the signed purchase path for the answer. The
sale is ended afterwards. Prints, as its last line, one JSON object:
  {"live": N, "read": R, "read_share": R/N, "refused": {reason: count}, "ms_per_picture": ...}
"""
import argparse
import base64
import hashlib
import io
import json
import pickle
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
from PIL import Image

sys.path.insert(0, __import__("os").path.dirname(__file__))
import trained  # noqa: E402


def call(edge, method, path, token=None, body=None, ip=None, form=False):
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if ip:
        headers["X-Forwarded-For"] = ip
    data = None
    if body is not None:
        if form:
            data = urllib.parse.urlencode(body).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
    req = urllib.request.Request(edge + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"null")
        except ValueError:
            return e.code, None


def call_retry(edge, method, path, token=None, body=None, ip=None, form=False):
    """call(), asked again after a while when the edge says busy (429, 503), as a bot would."""
    for attempt in range(20):
        status, answer = call(edge, method, path, token, body, ip, form)
        if status not in (429, 503):
            break
        time.sleep(0.2 * (attempt + 1))
    return status, answer


def solve(challenge, bits):
    """The smallest decimal x with `bits` leading zero bits in SHA-256("<challenge>.<x>")."""
    x = 0
    while True:
        d = hashlib.sha256(f"{challenge}.{x}".encode()).digest()
        if int.from_bytes(d[:8], "big") >> (64 - bits) == 0:
            return str(x)
        x += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edge", required=True)
    ap.add_argument("--admin-token", required=True, help="a file holding the admin token")
    ap.add_argument("--model", required=True)
    ap.add_argument("--n", type=int, default=48)
    a = ap.parse_args()
    edge = a.edge.rstrip("/")
    admin = open(a.admin_token).read().strip()
    with open(a.model, "rb") as f:
        model = pickle.load(f)
    now = int(time.time() * 1000)
    status, sale = call(edge, "POST", "/admin/sales", admin, {
        "title": "captcha-check live", "price_cents": 1, "stock": 1000000, "starts_at": "now",
        "ends_at": now + 3600_000, "queue": "none", "listed": False})
    if status != 201:
        sys.exit(f"live: creating the sale: HTTP {status} {sale}")
    sid = sale["id"]
    read, refused, spent = 0, {}, 0.0
    run = secrets.token_hex(3)
    try:
        for i in range(a.n):
            ip = f"10.{77 + secrets.randbelow(100)}.{i // 250}.{i % 250 + 1}"
            _, login = call_retry(edge, "POST", "/api/login", body={"user": f"live-{run}-{i}"}, ip=ip)
            token = login["token"]
            for _ in range(50):  # the edge learns the new sale within a second
                status, pow_ = call_retry(edge, "POST", f"/api/sales/{sid}/pow", token, ip=ip)
                if status != 404:
                    break
                time.sleep(0.1)
            query = ""
            if status == 200 and pow_.get("bits", 0) > 0:
                query = "?" + urllib.parse.urlencode(
                    {"pow": pow_["challenge"], "pow_solution": solve(pow_["challenge"], pow_["bits"])})
            status, c = call_retry(edge, "POST", f"/api/sales/{sid}/captcha{query}", token, ip=ip)
            if status != 200:
                sys.exit(f"live: captcha: HTTP {status} {c}")
            png = base64.b64decode(c["image"].split(",", 1)[1])
            img = np.asarray(Image.open(io.BytesIO(png)).convert("L"))[None]
            t = time.time()
            answer = trained.predict(model, img)[0]
            spent += time.time() - t
            status, p = call_retry(edge, "POST", f"/api/sales/{sid}/path", token,
                             {"captcha_token": c["token"], "answer": answer}, ip=ip, form=True)
            if status == 200:
                read += 1
            else:
                why = (p or {}).get("reason") or (p or {}).get("error") or str(status)
                refused[why] = refused.get(why, 0) + 1
    finally:
        call(edge, "POST", f"/admin/sales/{sid}/end", admin)
    print(json.dumps({"live": a.n, "read": read, "read_share": round(read / max(1, a.n), 4),
                      "refused": refused, "ms_per_picture": round(spent * 1000 / max(1, a.n), 1),
                      "sale_id": sid}))


if __name__ == "__main__":
    main()
