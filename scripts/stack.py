"""The stack a Python tool works on (imported by scripts/publish and scripts/verify-draw; the
shell tools' twin is lib.sh `load_stack`): each key from the environment if set, else from
the stack's file (var/stack.env, written by scripts/up; SECKILL_VAR names another stack's
directory), else the default of docs/DESIGN.md."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VAR = os.environ.get("SECKILL_VAR") or os.environ.get("VAR") or os.path.join(ROOT, "var")

DEFAULTS = {
    "EDGE": "http://127.0.0.1:8080",
    "BACKEND": "http://127.0.0.1:8081",
    "POP": "http://127.0.0.1:8090",
    "REDIS_URL": "redis://127.0.0.1:16379",
    "SECRETS": os.path.join(VAR, "secrets"),
    "ADMIN_TOKEN_FILE": os.path.join(VAR, "admin.token"),
    "PUBLIC_DIR": os.path.join(VAR, "public"),
}


def _file():
    out = {}
    try:
        with open(os.path.join(VAR, "stack.env"), encoding="utf-8") as f:
            for line in f:
                if "=" in line and not line.startswith("#"):
                    k, v = line.rstrip("\n").split("=", 1)
                    if v:
                        out[k] = v
    except OSError:
        pass
    return out


def get(key):
    """The stack's value of `key` (EDGE, BACKEND, POP, REDIS_URL, SECRETS, ...)."""
    return os.environ.get(key) or _file().get(key) or DEFAULTS.get(key, "")


def where():
    """One line of what the tool works on, for --help."""
    return ", ".join(f"{k}={get(k)}" for k in ("EDGE", "POP", "REDIS_URL", "SECRETS"))
