#!/usr/bin/env python3
"""Trained solvers for the seckill captcha: the attacker that exists (issue 32).

The drawing code is public, so labelled pictures are free: an attacker draws as many as they
like with `benchkit captcha-samples` and trains on them. This is that attacker, written for
this project by a helper session acting as one; `scripts/captcha-check --trained` runs it
(and `live.py` reads live pictures through the edge with its model). Used as:

  trained.py --method hog --train DIR [DIR ...] --test DIR [--limit N] [--model OUT]
  trained.py --method cnn --train DIR [DIR ...] --test DIR [--epochs E] [--model OUT]
  trained.py --predict --model MODEL IMAGE_OR_DIR [...]

A sample directory holds N.png pictures and answers.txt ("<index> <ANSWER>" lines), as
written by `benchkit captcha-samples N DIR SEED`. Training prints progress to stderr and,
as its last stdout line, one JSON object with the held-out scores.

hog: the picture is cut into `--windows` equal windows across the text band (fixed length,
     by construction); HOG features of each window; one MLPClassifier per position.
cnn: a small CNN read as a sequence of columns, trained with CTC loss (no fixed length:
     the answer is whatever the greedy CTC decode gives), written in JAX + optax.
"""
import argparse
import collections
import json
import os
import pickle
import sys
import time


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- data

def read_answers(d):
    path = os.path.join(d, "answers.txt")
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            idx, ans = line.split(None, 1)
            out.append((os.path.join(d, idx + ".png"), ans.strip()))
    return out


def load_dirs(dirs, limit=None):
    import numpy as np
    from PIL import Image
    items = []
    for d in dirs:
        items.extend(read_answers(d))
    if limit:
        items = items[:limit]
    imgs = [np.asarray(Image.open(p).convert("L")) for p, _ in items]
    shapes = {im.shape for im in imgs}
    if len(shapes) != 1:
        raise SystemExit(f"pictures of several sizes: {shapes}")
    return np.stack(imgs), [a for _, a in items], [p for p, _ in items]


def list_images(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            names = [n for n in os.listdir(p) if n.lower().endswith(".png")]
            names.sort(key=lambda n: (len(n), n))
            out.extend(os.path.join(p, n) for n in names)
        else:
            out.append(p)
    return out


# ----------------------------------------------------------------------------- scoring

def align(t, p):
    """Levenshtein alignment; returns (distance, [(true_char or '', pred_char or '')])."""
    n, m = len(t), len(p)
    D = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        D[i][0] = i
    for j in range(m + 1):
        D[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            D[i][j] = min(D[i - 1][j] + 1, D[i][j - 1] + 1,
                          D[i - 1][j - 1] + (t[i - 1] != p[j - 1]))
    i, j, errs = n, m, []
    while i > 0 or j > 0:
        if i > 0 and j > 0 and D[i][j] == D[i - 1][j - 1] + (t[i - 1] != p[j - 1]):
            if t[i - 1] != p[j - 1]:
                errs.append((t[i - 1], p[j - 1]))
            i, j = i - 1, j - 1
        elif i > 0 and D[i][j] == D[i - 1][j] + 1:
            errs.append((t[i - 1], ""))  # missed
            i -= 1
        else:
            errs.append(("", p[j - 1]))  # inserted
            j -= 1
    return D[n][m], errs


def score(truth, pred):
    read = sum(t == p for t, p in zip(truth, pred))
    chars = sum(len(t) for t in truth)
    wrong = 0
    conf = collections.Counter()
    wrong_len = 0
    for t, p in zip(truth, pred):
        if t == p:
            continue
        wrong_len += len(t) != len(p)
        dist, errs = align(t, p)
        wrong += min(dist, len(t))
        for a, b in errs:
            conf[f"{a or '_'}->{b or '_'}"] += 1
    return {
        "read": read,
        "read_share": round(read / max(1, len(truth)), 4),
        # 1 - (edit distance / answer length), summed over all test pictures
        "char_accuracy": round(1 - wrong / max(1, chars), 4),
        "wrong_length": wrong_len,
        "confusions": conf.most_common(5),
    }


# ----------------------------------------------------------------------------- hog

HOG_DEFAULT = dict(windows=5, x0=15, x1=285, pad=8, scale=1, orientations=9, ppc=10, cpb=3,
                   hidden=256)


def hog_features(imgs, cfg):
    """imgs: (N, H, W) uint8 -> (N, windows, F) float32."""
    import numpy as np
    from skimage.feature import hog
    n, H, W = imgs.shape
    s = cfg["scale"]
    x0, x1, k, pad = cfg["x0"], cfg["x1"], cfg["windows"], cfg["pad"]
    step = (x1 - x0) / k
    f = imgs.astype(np.float32) / 255.0
    if s > 1:
        f = f[:, : H // s * s, : W // s * s].reshape(n, H // s, s, W // s, s).mean((2, 4))
    out = []
    for im in f:
        row = []
        for w in range(k):
            a = int(round((x0 + w * step - pad) / s))
            b = int(round((x0 + (w + 1) * step + pad) / s))
            a, b = max(0, a), min(im.shape[1], b)
            win = im[:, a:b]
            row.append(hog(win, orientations=cfg["orientations"],
                           pixels_per_cell=(cfg["ppc"], cfg["ppc"]),
                           cells_per_block=(cfg["cpb"], cfg["cpb"]),
                           block_norm="L2-Hys", feature_vector=True))
        L = min(len(r) for r in row)  # windows at the edge may be a pixel narrower
        out.append(np.stack([r[:L] for r in row]))
    L = min(o.shape[1] for o in out)
    return np.stack([o[:, :L] for o in out]).astype(np.float32)


def hog_train(args, imgs, answers):
    import numpy as np
    from sklearn.neural_network import MLPClassifier
    cfg = dict(HOG_DEFAULT)
    cfg["windows"] = args.windows
    for kv in args.hog_opt or []:
        k, v = kv.split("=")
        cfg[k] = type(HOG_DEFAULT[k])(v)
    log(f"hog: cfg {cfg}")
    lengths = collections.Counter(len(a) for a in answers)
    keep = [i for i, a in enumerate(answers) if len(a) == cfg["windows"]]
    if len(keep) < len(answers):
        log(f"hog: answer lengths {dict(lengths)}; training only on the {len(keep)} of "
            f"length {cfg['windows']} (this method assumes a fixed length)")
    imgs = imgs[keep]
    answers = [answers[i] for i in keep]
    t = time.time()
    X = hog_features(imgs, cfg)
    log(f"hog: features {X.shape} in {time.time() - t:.1f}s")
    clfs = []
    for w in range(cfg["windows"]):
        y = np.array([a[w] for a in answers])
        clf = MLPClassifier(hidden_layer_sizes=(cfg["hidden"],), alpha=1e-4,
                            batch_size=200, learning_rate_init=1e-3, max_iter=200,
                            early_stopping=True, n_iter_no_change=10,
                            random_state=args.seed + w)
        t1 = time.time()
        clf.fit(X[:, w, :X.shape[2]], y)
        log(f"hog: window {w}: {clf.n_iter_} iterations, "
            f"val acc {clf.best_validation_score_:.4f}, {time.time() - t1:.1f}s")
        clfs.append(clf)
    return {"method": "hog", "cfg": cfg, "clfs": clfs, "F": X.shape[2]}


def hog_predict(model, imgs):
    import numpy as np
    X = hog_features(imgs, model["cfg"])
    F = min(model["F"], X.shape[2])
    cols = [clf.predict(X[:, w, :F]) for w, clf in enumerate(model["clfs"])]
    return ["".join(c) for c in np.stack(cols, 1)]


# ----------------------------------------------------------------------------- cnn

CNN_DEFAULT = dict(H=32, W=96, ch=(16, 32, 64, 64), hidden=128, ctx=5)


def cnn_prep(imgs, cfg):
    import numpy as np
    n, H, W = imgs.shape
    if (H, W) == (cfg["H"] * 2, cfg["W"] * 2):
        f = imgs.astype(np.float32).reshape(n, cfg["H"], 2, cfg["W"], 2).mean((2, 4))
    elif (H, W) == (cfg["H"], cfg["W"]):
        f = imgs.astype(np.float32)
    else:
        from PIL import Image
        f = np.stack([np.asarray(Image.fromarray(im).resize((cfg["W"], cfg["H"]),
                                                            Image.BILINEAR))
                      for im in imgs]).astype(np.float32)
    return (1.0 - f / 255.0)[..., None]  # ink = 1, NHWC


def cnn_init(key, cfg, n_classes):
    import jax
    import jax.numpy as jnp
    params = {}
    cin = 1
    keys = jax.random.split(key, 16)
    for i, c in enumerate(cfg["ch"]):
        fan = 9 * cin
        params[f"c{i}"] = (jax.random.normal(keys[i], (3, 3, cin, c)) * (2 / fan) ** 0.5,
                           jnp.zeros(c))
        cin = c
    h = cfg["H"]
    for p in cnn_pools(cfg):
        h //= p[0]
    feat = h * cin
    hid = cfg["hidden"]
    params["d0"] = (jax.random.normal(keys[10], (feat, hid)) * (2 / feat) ** 0.5,
                    jnp.zeros(hid))
    k = cfg["ctx"]
    params["t0"] = (jax.random.normal(keys[11], (k, hid, hid)) * (2 / (k * hid)) ** 0.5,
                    jnp.zeros(hid))
    params["out"] = (jax.random.normal(keys[12], (hid, n_classes)) * (1 / hid) ** 0.5,
                     jnp.zeros(n_classes))
    return params


def cnn_pools(cfg):
    # two 2x2 pools, then pool height only, keeping width as the time axis
    return [(2, 2), (2, 2), (2, 1), (1, 1)][: len(cfg["ch"])]


def cnn_apply(params, x, cfg, dropout_key=None):
    """x: (B, H, W, 1) -> logits (B, T, K)."""
    import jax
    import jax.numpy as jnp
    from jax import lax
    for i, pool in enumerate(cnn_pools(cfg)):
        w, b = params[f"c{i}"]
        x = lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC")) + b
        x = jax.nn.relu(x)
        if pool != (1, 1):  # non-overlapping max pool by reshape (XLA's CPU
            ph, pw = pool   # select-and-scatter gradient is slow)
            B, h, w_, C = x.shape
            x = x[:, : h // ph * ph, : w_ // pw * pw]
            x = x.reshape(B, h // ph, ph, w_ // pw, pw, C).max((2, 4))
    B, h, T, C = x.shape
    x = jnp.transpose(x, (0, 2, 1, 3)).reshape(B, T, h * C)
    w, b = params["d0"]
    x = jax.nn.relu(x @ w + b)
    if dropout_key is not None:
        keep = jax.random.bernoulli(dropout_key, 0.8, x.shape)
        x = jnp.where(keep, x / 0.8, 0)
    w, b = params["t0"]
    y = lax.conv_general_dilated(x, w, (1,), "SAME", dimension_numbers=("NWC", "WIO", "NWC"))
    x = jax.nn.relu(y + b) + x
    w, b = params["out"]
    return x @ w + b


def ctc_decode(logits, alphabet):
    import numpy as np
    best = np.asarray(logits).argmax(-1)
    out = []
    for row in best:
        s, prev = [], 0
        for k in row:
            if k != prev and k != 0:
                s.append(alphabet[k - 1])
            prev = k
        out.append("".join(s))
    return out


def cnn_train(args, imgs, answers, test_imgs=None, test_answers=None):
    import numpy as np
    import jax
    import jax.numpy as jnp
    import optax
    cfg = dict(CNN_DEFAULT)
    if args.channels:
        cfg["ch"] = tuple(int(c) for c in args.channels.split(","))
    if args.size:
        cfg["H"], cfg["W"] = (int(v) for v in args.size.lower().split("x"))
    if args.hidden:
        cfg["hidden"] = args.hidden
    alphabet = "".join(sorted(set("".join(answers))))
    idx = {c: i + 1 for i, c in enumerate(alphabet)}  # 0 = CTC blank
    L = max(len(a) for a in answers) + 2
    X = cnn_prep(imgs, cfg)
    Y = np.zeros((len(answers), L), np.int32)
    Yp = np.ones((len(answers), L), np.float32)
    for i, a in enumerate(answers):
        Y[i, : len(a)] = [idx[c] for c in a]
        Yp[i, : len(a)] = 0
    log(f"cnn: {len(answers)} pictures {X.shape[1:]}, alphabet {alphabet!r}, lengths "
        f"{dict(sorted(collections.Counter(map(len, answers)).items()))}, cfg {cfg}")
    key = jax.random.PRNGKey(args.seed)
    params = cnn_init(key, cfg, len(alphabet) + 1)
    bs = args.batch
    steps_per_epoch = len(X) // bs
    total = steps_per_epoch * args.epochs
    sched = optax.warmup_cosine_decay_schedule(0.0, args.lr, min(500, total // 10), total,
                                               args.lr * 0.02)
    opt = optax.chain(optax.clip_by_global_norm(5.0), optax.adamw(sched, weight_decay=1e-4))
    state = opt.init(params)

    def loss_fn(p, x, y, yp, k):
        logits = cnn_apply(p, x, cfg, k)
        lp = jnp.zeros(logits.shape[:2])
        return optax.ctc_loss(logits, lp, y, yp, blank_id=0).mean()

    @jax.jit
    def step(p, s, x, y, yp, k):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y, yp, k)
        upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s, loss

    fwd = jax.jit(lambda p, x: cnn_apply(p, x, cfg))
    model = {"method": "cnn", "cfg": cfg, "alphabet": alphabet}
    rng = np.random.default_rng(args.seed)
    for ep in range(args.epochs):
        t = time.time()
        perm = rng.permutation(len(X))
        losses = []
        for s_i in range(steps_per_epoch):
            b = perm[s_i * bs:(s_i + 1) * bs]
            key, sub = jax.random.split(key)
            params, state, loss = step(params, state, X[b], Y[b], Yp[b], sub)
            losses.append(loss)
        msg = f"cnn: epoch {ep + 1}/{args.epochs} loss {float(np.mean(losses)):.4f} " \
              f"{time.time() - t:.1f}s"
        if test_imgs is not None and args.monitor:
            model["params"] = params
            pr = cnn_predict(model, test_imgs[: args.monitor], fwd=fwd)
            msg += f" | test[:{args.monitor}] read " \
                   f"{score(test_answers[: args.monitor], pr)['read_share']:.3f}"
        log(msg)
    model["params"] = jax.tree_util.tree_map(np.asarray, params)
    return model


def cnn_predict(model, imgs, fwd=None, bs=250):
    import jax
    cfg = model["cfg"]
    if fwd is None:
        fwd = jax.jit(lambda p, x: cnn_apply(p, x, cfg))
    out = []
    for i in range(0, len(imgs), bs):
        x = cnn_prep(imgs[i:i + bs], cfg)
        if len(x) < bs:  # keep one compiled shape
            import numpy as np
            x = np.concatenate([x, np.zeros((bs - len(x),) + x.shape[1:], x.dtype)])
        out.extend(ctc_decode(fwd(model["params"], x), model["alphabet"])[: len(imgs) - i])
    return out


# ----------------------------------------------------------------------------- main

def predict(model, imgs):
    return hog_predict(model, imgs) if model["method"] == "hog" else cnn_predict(model, imgs)


def timed_predict(model, imgs):
    predict(model, imgs[:10])  # warm-up (JIT compile, imports)
    t = time.time()
    pred = predict(model, imgs)
    return pred, (time.time() - t) * 1000 / max(1, len(imgs))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", choices=["hog", "cnn"])
    ap.add_argument("--train", nargs="+", help="sample directories to train on")
    ap.add_argument("--test", nargs="+", help="held-out sample directories")
    ap.add_argument("--limit", type=int, help="use only the first N training pictures")
    ap.add_argument("--model", help="where to save (training) or load (--predict) the model")
    ap.add_argument("--predict", action="store_true",
                    help="read the pictures or directories given as arguments with --model")
    ap.add_argument("inputs", nargs="*", metavar="IMAGE_OR_DIR")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--channels", help="cnn conv channels, default 16,32,64,64")
    ap.add_argument("--size", help="cnn input HxW, e.g. 32x96 (default) or 50x150")
    ap.add_argument("--hidden", type=int, help="cnn width of the per-column layers")
    ap.add_argument("--windows", type=int, default=5, help="hog: number of glyph windows")
    ap.add_argument("--hog-opt", nargs="*", metavar="KEY=VALUE",
                    help=f"hog: override settings of {HOG_DEFAULT}")
    ap.add_argument("--monitor", type=int, default=500,
                    help="cnn: score this many test pictures after each epoch (0: off)")
    ap.add_argument("--threads", type=int, default=0,
                    help="pin the process to this many cores (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    if args.threads:
        cores = sorted(os.sched_getaffinity(0))[: args.threads]
        os.sched_setaffinity(0, cores)
        for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[v] = str(args.threads)

    if args.predict:
        if not args.model or not args.inputs:
            ap.error("--predict needs --model and pictures or directories")
        with open(args.model, "rb") as f:
            model = pickle.load(f)
        import numpy as np
        from PIL import Image
        files = list_images(args.inputs)
        imgs = np.stack([np.asarray(Image.open(p).convert("L")) for p in files])
        pred, ms = timed_predict(model, imgs)
        for p, s in zip(files, pred):
            print(p, s)
        # a single directory with answers: score it too
        if len(args.inputs) == 1 and os.path.isfile(os.path.join(args.inputs[0],
                                                                 "answers.txt")):
            truth = dict(read_answers(args.inputs[0]))
            t = [truth[p] for p in files]
            print(json.dumps({"method": model["method"], "model": args.model,
                              "test": len(t), **score(t, pred),
                              "ms_per_picture": round(ms, 3)}))
        return

    if not (args.method and args.train and args.test):
        ap.error("training needs --method, --train and --test")
    t0 = time.time()
    imgs, answers, _ = load_dirs(args.train, args.limit)
    test_imgs, test_answers, _ = load_dirs(args.test)
    log(f"loaded {len(imgs)} train + {len(test_imgs)} test pictures in {time.time() - t0:.1f}s")

    t = time.time()
    if args.method == "hog":
        model = hog_train(args, imgs, answers)
    else:
        model = cnn_train(args, imgs, answers, test_imgs, test_answers)
    train_s = time.time() - t
    if args.model:
        with open(args.model, "wb") as f:
            pickle.dump(model, f)

    pred, ms = timed_predict(model, test_imgs)
    res = {"method": args.method, "train": len(imgs), "test": len(test_imgs),
           **score(test_answers, pred),
           "train_seconds": round(train_s, 1), "ms_per_picture": round(ms, 3)}
    if args.method == "cnn":
        res["epochs"] = args.epochs
    wrong = [(a, p) for a, p in zip(test_answers, pred) if a != p]
    log("examples of misreads (truth -> read):",
        ", ".join(f"{a}->{p or '-'}" for a, p in wrong[:15]))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
