#!/usr/bin/env python3
"""An outside attacker's OCR against our captchas: tesseract, after the best preprocessing we
could think of, tried several ways per picture; a captcha counts as read if any way gives
its answer (the attacker's best case).

  ocr.py DIR        (DIR holds <i>.png and answers.txt from `benchkit captcha-samples`)

Preprocessing, each a separate try:
  1. upscale x3 (Lanczos), Otsu threshold;
  2. the same, then a morphological opening with a disc wider than the decoy lines
     (removes strokes thinner than the glyphs' own), then closing;
  3. a median filter, threshold, opening with a smaller disc;
  4. (2) with each connected blob smaller than a glyph stroke's area dropped;
  5. the light-on-dark band found (where a wide median blur is dark) and turned back, then
     (1) and (2) again.
Each is read by tesseract with page segmentation modes 7 (one line) and 8 (one word) and
the alphabet as a whitelist. Prints the share read and exits 0; the caller judges it.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

ALPHABET = "CDEHJKMPTUW3469"


def otsu(gray):
    hist = np.bincount(gray.ravel(), minlength=256).astype(float)
    total = gray.size
    sum_all = np.dot(np.arange(256), hist)
    best, threshold, weight_b, sum_b = 0.0, 128, 0.0, 0.0
    for t in range(256):
        weight_b += hist[t]
        if weight_b == 0:
            continue
        weight_f = total - weight_b
        if weight_f == 0:
            break
        sum_b += t * hist[t]
        mean_b, mean_f = sum_b / weight_b, (sum_all - sum_b) / weight_f
        between = weight_b * weight_f * (mean_b - mean_f) ** 2
        if between > best:
            best, threshold = between, t
    return threshold


def disc(r):
    y, x = np.ogrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= r * r


def unband(img):
    """Where the background itself is dark (a wide median blur), light and dark swapped back."""
    a = np.asarray(img).astype(np.int16)
    bg = np.asarray(img.filter(ImageFilter.MedianFilter(21))).astype(np.int16)
    dark = bg < 128
    return Image.fromarray(np.where(dark, 255 - a, a).clip(0, 255).astype(np.uint8))


def variants(path):
    yield from variants_of(Image.open(path).convert("L"))
    yield from list(variants_of(unband(Image.open(path).convert("L"))))[:2]


def variants_of(img):
    big = img.resize((img.width * 3, img.height * 3), Image.LANCZOS)
    a = np.asarray(big)
    ink = a < otsu(a)  # True where dark
    yield ink
    opened = ndimage.binary_closing(ndimage.binary_opening(ink, structure=disc(5)), structure=disc(2))
    yield opened
    med = np.asarray(big.filter(ImageFilter.MedianFilter(5)))
    yield ndimage.binary_opening(med < otsu(med), structure=disc(3))
    labels, n = ndimage.label(opened)
    if n:
        sizes = ndimage.sum(opened, labels, range(1, n + 1))
        keep = np.isin(labels, 1 + np.flatnonzero(sizes >= 900))
        yield keep


def read(ink, tmpdir):
    out = os.path.join(tmpdir, "in.png")
    Image.fromarray(np.where(ink, 0, 255).astype(np.uint8)).save(out)
    texts = []
    for psm in ("7", "8"):
        r = subprocess.run(
            ["tesseract", out, "stdout", "--psm", psm, "-c",
             f"tessedit_char_whitelist={ALPHABET}"],
            capture_output=True, text=True, check=False)
        texts.append("".join(c for c in r.stdout.upper() if c in ALPHABET))
    return texts


def main():
    d = sys.argv[1]
    answers = dict(line.split() for line in open(os.path.join(d, "answers.txt")))
    read_ok = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, answer in sorted(answers.items(), key=lambda kv: int(kv[0])):
            guesses = [t for ink in variants(os.path.join(d, f"{i}.png")) for t in read(ink, tmp)]
            hit = answer in guesses
            read_ok += hit
            print(f"{i} {answer} {'READ' if hit else '-'} {' '.join(sorted(set(guesses)))[:80]}")
    n = len(answers)
    print(f"ocr: {read_ok} of {n} read ({100.0 * read_ok / n:.1f}%)")


if __name__ == "__main__":
    main()
