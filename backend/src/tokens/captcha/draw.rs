//! Drawing a captcha: a short code as an SVG made only of distorted, shuffled vector strokes
//! (a stroke font of our own; no text, no font, nothing a script can read from the markup).
//!
//! What this defends against:
//! * reading the answer from the markup (regex / DOM scraping): there is no
//!   text, no font, no title, no ids or classes, no character data, and no
//!   uppercase letter in any attribute value;
//! * template matching on markup structure: every glyph is scaled, rotated,
//!   sheared and jittered, every segment is cut into a random number of
//!   wobbly quadratic curves, and all pieces of all glyphs are pooled with
//!   decoy strokes, shuffled, and spread over a random number of `<path>`
//!   elements with random colours.  The number and order of paths, pieces
//!   and points therefore do not map to characters, and the same answer never
//!   yields the same markup twice;
//! * geometric solvers that read the path data without rendering, join
//!   pieces into glyphs, cut the canvas into slots and fit the stroke font:
//!   - no two pieces share an on-curve point: strokes are cut at some
//!     corners and at random points between them, and each end of each piece
//!     is moved on its own (small overlaps and gaps, invisible at stroke
//!     width), so endpoints do not chain pieces into glyphs;
//!   - glyphs get random widths, gaps and overlaps, so there are no slots;
//!   - decoys are cut from the same font and drawn exactly like glyph pieces,
//!     only smaller: between the glyphs, over them and touching them, so
//!     joining by distance mixes them in and fitting the font finds them too;
//!   - colour and stroke width are drawn per piece from a few shared styles,
//!     so neither tells glyphs from each other or from decoys; the wavy line
//!     is cut into short overlapping pieces in the same styles.
//!
//! What it does not defend against: rendering the SVG and running OCR (or a
//! trained model) on the image, a patient solver that segments the clutter
//! better than this one expects, and human solving farms.  That is the
//! normal limit of any image captcha; rate limiting has to cover the rest.

use std::collections::HashSet;

const WIDTH: f32 = 160.0;
const HEIGHT: f32 = 60.0;
const MARGIN: f32 = 6.0;

/// A point of the stroke font grid: x in 0..=4, y in 0..=6, y pointing down.
type Pt = (f32, f32);
/// One polyline of a glyph.
type Stroke = &'static [Pt];

/// Stroke font: every glyph is a few polylines on the 4 x 6 grid.
#[rustfmt::skip]
const FONT: &[(u8, &[Stroke])] = &[
    (b'A', &[&[(0.0, 6.0), (2.0, 0.0), (4.0, 6.0)], &[(0.8, 3.8), (3.2, 3.8)]]),
    (b'B', &[
        &[(0.0, 0.0), (0.0, 6.0), (3.0, 6.0), (4.0, 5.1), (4.0, 4.0), (3.0, 3.0), (0.0, 3.0)],
        &[(0.0, 0.0), (2.7, 0.0), (3.6, 0.7), (3.6, 2.3), (2.7, 3.0)],
    ]),
    (b'C', &[&[(4.0, 1.0), (3.1, 0.0), (1.0, 0.0), (0.0, 1.2), (0.0, 4.8), (1.0, 6.0), (3.1, 6.0), (4.0, 5.0)]]),
    (b'D', &[&[(0.0, 0.0), (0.0, 6.0), (2.4, 6.0), (4.0, 4.5), (4.0, 1.5), (2.4, 0.0), (0.0, 0.0)]]),
    (b'E', &[&[(4.0, 0.0), (0.0, 0.0), (0.0, 6.0), (4.0, 6.0)], &[(0.0, 3.0), (3.0, 3.0)]]),
    (b'F', &[&[(4.0, 0.0), (0.0, 0.0), (0.0, 6.0)], &[(0.0, 3.0), (3.0, 3.0)]]),
    (b'G', &[&[
        (4.0, 1.0), (3.1, 0.0), (1.0, 0.0), (0.0, 1.2), (0.0, 4.8), (1.0, 6.0),
        (3.0, 6.0), (4.0, 5.0), (4.0, 3.4), (2.2, 3.4),
    ]]),
    (b'H', &[&[(0.0, 0.0), (0.0, 6.0)], &[(4.0, 0.0), (4.0, 6.0)], &[(0.0, 3.0), (4.0, 3.0)]]),
    (b'J', &[&[(1.6, 0.0), (4.0, 0.0), (4.0, 4.8), (3.0, 6.0), (1.0, 6.0), (0.0, 4.6)]]),
    (b'K', &[&[(0.0, 0.0), (0.0, 6.0)], &[(4.0, 0.0), (0.0, 4.0)], &[(1.5, 2.5), (4.0, 6.0)]]),
    (b'L', &[&[(0.0, 0.0), (0.0, 6.0), (4.0, 6.0)]]),
    (b'M', &[&[(0.0, 6.0), (0.0, 0.0), (2.0, 3.6), (4.0, 0.0), (4.0, 6.0)]]),
    (b'N', &[&[(0.0, 6.0), (0.0, 0.0), (4.0, 6.0), (4.0, 0.0)]]),
    (b'P', &[&[(0.0, 6.0), (0.0, 0.0), (3.0, 0.0), (4.0, 0.8), (4.0, 2.4), (3.0, 3.2), (0.0, 3.2)]]),
    (b'Q', &[
        &[(1.0, 0.0), (3.0, 0.0), (4.0, 1.2), (4.0, 4.8), (3.0, 6.0), (1.0, 6.0), (0.0, 4.8), (0.0, 1.2), (1.0, 0.0)],
        &[(2.2, 4.2), (4.3, 6.5)],
    ]),
    (b'R', &[
        &[(0.0, 6.0), (0.0, 0.0), (3.0, 0.0), (4.0, 0.8), (4.0, 2.4), (3.0, 3.2), (0.0, 3.2)],
        &[(2.0, 3.2), (4.0, 6.0)],
    ]),
    (b'S', &[&[
        (4.0, 1.0), (3.0, 0.0), (1.0, 0.0), (0.0, 1.0), (0.0, 2.0), (1.0, 2.8),
        (3.0, 3.2), (4.0, 4.0), (4.0, 5.0), (3.0, 6.0), (1.0, 6.0), (0.0, 5.0),
    ]]),
    (b'T', &[&[(0.0, 0.0), (4.0, 0.0)], &[(2.0, 0.0), (2.0, 6.0)]]),
    (b'U', &[&[(0.0, 0.0), (0.0, 4.8), (1.0, 6.0), (3.0, 6.0), (4.0, 4.8), (4.0, 0.0)]]),
    (b'V', &[&[(0.0, 0.0), (2.0, 6.0), (4.0, 0.0)]]),
    (b'W', &[&[(0.0, 0.0), (1.0, 6.0), (2.0, 2.2), (3.0, 6.0), (4.0, 0.0)]]),
    (b'X', &[&[(0.0, 0.0), (4.0, 6.0)], &[(4.0, 0.0), (0.0, 6.0)]]),
    (b'Y', &[&[(0.0, 0.0), (2.0, 3.0), (4.0, 0.0)], &[(2.0, 3.0), (2.0, 6.0)]]),
    (b'Z', &[&[(0.0, 0.0), (4.0, 0.0), (0.0, 6.0), (4.0, 6.0)]]),
    (b'2', &[&[
        (0.0, 1.4), (0.6, 0.4), (1.6, 0.0), (2.8, 0.0), (3.7, 0.6), (4.0, 1.6),
        (3.6, 2.6), (0.0, 6.0), (4.0, 6.0),
    ]]),
    (b'3', &[
        &[(0.0, 0.8), (1.0, 0.0), (3.0, 0.0), (4.0, 0.9), (4.0, 2.0), (3.0, 2.9), (1.6, 2.9)],
        &[(3.0, 2.9), (4.0, 3.8), (4.0, 5.1), (3.0, 6.0), (1.0, 6.0), (0.0, 5.2)],
    ]),
    (b'4', &[&[(3.0, 6.0), (3.0, 0.0), (0.0, 4.2), (4.0, 4.2)]]),
    (b'5', &[&[
        (4.0, 0.0), (0.4, 0.0), (0.0, 2.8), (2.8, 2.6), (4.0, 3.6), (4.0, 5.0),
        (3.0, 6.0), (1.0, 6.0), (0.0, 5.2),
    ]]),
    (b'6', &[&[
        (3.6, 0.4), (2.6, 0.0), (1.0, 0.0), (0.0, 1.4), (0.0, 4.8), (1.0, 6.0),
        (3.0, 6.0), (4.0, 5.0), (4.0, 3.8), (3.0, 2.8), (1.0, 2.8), (0.0, 3.8),
    ]]),
    (b'7', &[&[(0.0, 0.0), (4.0, 0.0), (1.5, 6.0)]]),
    (b'8', &[&[
        (2.0, 3.0), (0.8, 2.4), (0.3, 1.5), (0.8, 0.4), (2.0, 0.0), (3.2, 0.4), (3.7, 1.5),
        (3.2, 2.4), (2.0, 3.0), (0.6, 3.7), (0.0, 4.8), (0.8, 5.8), (2.0, 6.0), (3.2, 5.8),
        (4.0, 4.8), (3.4, 3.7), (2.0, 3.0),
    ]]),
    (b'9', &[&[
        (4.0, 2.2), (3.0, 3.2), (1.0, 3.2), (0.0, 2.2), (0.0, 1.0), (1.0, 0.0),
        (3.0, 0.0), (4.0, 1.2), (4.0, 4.6), (3.0, 6.0), (1.0, 6.0), (0.4, 5.4),
    ]]),
];

/// A point in tenths of a pixel, so every emitted number has at most 1 decimal.
type Tenths = (i32, i32);

/// One drawing command of a piece, in absolute tenths (made relative on output).
enum Seg {
    Line(Tenths),
    Quad(Tenths, Tenths),
}

impl Seg {
    /// The on-curve point the segment ends at.
    fn end(&self) -> Tenths {
        match *self {
            Seg::Line(p) | Seg::Quad(_, p) => p,
        }
    }

    fn end_mut(&mut self) -> &mut Tenths {
        match self {
            Seg::Line(p) | Seg::Quad(_, p) => p,
        }
    }
}

/// A connected run of segments; on output it starts with its own `m`.
struct Piece {
    start: Tenths,
    segs: Vec<Seg>,
}

impl Piece {
    fn new(start: Pt) -> Piece {
        Piece {
            start: tenths(start),
            segs: Vec::new(),
        }
    }

    /// The start and every segment end.
    fn on_curve(&self) -> impl Iterator<Item = Tenths> + '_ {
        std::iter::once(self.start).chain(self.segs.iter().map(Seg::end))
    }
}

/// Small helpers over the caller's random source.
struct Rng<'a> {
    next: &'a mut dyn FnMut() -> u32,
}

impl Rng<'_> {
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        ((self.next)() >> 8) as f32 / (1u32 << 24) as f32
    }

    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in [-a, a).
    fn jitter(&mut self, a: f32) -> f32 {
        self.range(-a, a)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }

    /// Uniform in 0..n; `n` must be positive.
    fn below(&mut self, n: usize) -> usize {
        ((u64::from((self.next)()) * n as u64) >> 32) as usize
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }

    fn dark_colour(&mut self) -> String {
        let mut c = || 10 + self.below(100);
        format!("rgb({},{},{})", c(), c(), c())
    }

    /// A dark colour of the given hue (0..1, wrapping), randomly saturated.
    fn dark_hue(&mut self, hue: f32) -> String {
        let (v, s) = (self.range(0.3, 0.5), self.range(0.55, 0.9));
        let h = hue.rem_euclid(1.0) * 6.0;
        let f = h - h.floor();
        let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
        let (r, g, b) = match h as u32 {
            0 => (v, t, p),
            1 => (q, v, p),
            2 => (p, v, t),
            3 => (p, q, v),
            4 => (t, p, v),
            _ => (v, p, q),
        };
        let c = |x: f32| (x * 255.0).round() as u8;
        format!("rgb({},{},{})", c(r), c(g), c(b))
    }

    fn light_colour(&mut self) -> String {
        let mut c = || 222 + self.below(34);
        format!("rgb({},{},{})", c(), c(), c())
    }
}

fn tenths((x, y): Pt) -> Tenths {
    ((x * 10.0).round() as i32, (y * 10.0).round() as i32)
}

fn from_tenths((x, y): Tenths) -> Pt {
    (x as f32 / 10.0, y as f32 / 10.0)
}

fn add(a: Pt, b: Pt) -> Pt {
    (a.0 + b.0, a.1 + b.1)
}

fn sub(a: Pt, b: Pt) -> Pt {
    (a.0 - b.0, a.1 - b.1)
}

fn mul(a: Pt, k: f32) -> Pt {
    (a.0 * k, a.1 * k)
}

fn dist(a: Pt, b: Pt) -> f32 {
    (a.0 - b.0).hypot(a.1 - b.1)
}

/// Unit vector from `a` towards `b` (along x if they coincide).
fn direction(a: Pt, b: Pt) -> Pt {
    let d = dist(a, b);
    if d < 1e-3 {
        (1.0, 0.0)
    } else {
        mul(sub(b, a), 1.0 / d)
    }
}

/// `v` turned by a quarter.
fn perp((x, y): Pt) -> Pt {
    (-y, x)
}

fn lerp(a: Pt, b: Pt, t: f32) -> Pt {
    (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
}

fn clamp_to_canvas((x, y): Pt) -> Pt {
    (x.clamp(2.0, WIDTH - 2.0), y.clamp(2.0, HEIGHT - 2.0))
}

/// Pixels per font grid unit (before random scaling) for `n` glyphs.
fn glyph_unit(n: usize) -> f32 {
    let slot = (WIDTH - 2.0 * MARGIN) / n.max(1) as f32;
    (slot * 0.7 / 4.0).min(5.0)
}

/// Where and how a glyph (or a decoy cut from one) is placed: grid point -> canvas pixel.
struct Placement {
    cx: f32,
    cy: f32,
    sx: f32,
    sy: f32,
    shear: f32,
    cos: f32,
    sin: f32,
}

impl Placement {
    /// Grid centre (2, 3) at `centre`, `sx` x `sy` pixels per grid unit,
    /// rotated by up to `tilt` degrees either way and randomly sheared.
    fn new(rng: &mut Rng, centre: Pt, sx: f32, sy: f32, tilt: f32) -> Placement {
        let angle = rng.jitter(tilt).to_radians();
        Placement {
            cx: centre.0,
            cy: centre.1,
            sx,
            sy,
            shear: rng.jitter(0.22),
            cos: angle.cos(),
            sin: angle.sin(),
        }
    }

    fn apply(&self, (gx, gy): Pt) -> Pt {
        let y = (gy - 3.0) * self.sy;
        let x = (gx - 2.0) * self.sx + self.shear * y;
        (
            self.cx + x * self.cos - y * self.sin,
            self.cy + x * self.sin + y * self.cos,
        )
    }
}

/// Placements for `n` glyphs of grid unit `unit`: random heights, widths,
/// gaps (0..2.2 units; tilt and shear still make neighbours touch now and
/// then) and left offset, so glyphs do not sit in fixed slots.
fn layout(rng: &mut Rng, n: usize, unit: f32) -> Vec<Placement> {
    let span = WIDTH - 2.0 * MARGIN;
    let mut sizes = Vec::with_capacity(n);
    let mut gaps = Vec::with_capacity(n);
    for i in 0..n {
        let sy = unit * rng.range(0.92, 1.12);
        sizes.push((sy * rng.range(0.8, 1.2), sy));
        gaps.push(if i == 0 {
            0.0
        } else {
            4.0 * unit * rng.range(0.0, 0.55)
        });
    }
    let total: f32 = sizes.iter().map(|s| 4.0 * s.0).sum::<f32>() + gaps.iter().sum::<f32>();
    let fit = if total > span { span / total } else { 1.0 };
    let mut x = MARGIN + rng.range(0.0, (span - total * fit).max(0.0));
    let mut places = Vec::with_capacity(n);
    for (&(sx, sy), &gap) in sizes.iter().zip(&gaps) {
        let w = 4.0 * sx * fit;
        x += gap * fit;
        let centre = (x + w / 2.0, HEIGHT / 2.0 + rng.jitter(4.0));
        places.push(Placement::new(rng, centre, sx * fit, sy, 14.0));
        x += w;
    }
    places
}

/// Appends the segment `a -> b` to `piece` as 1..=3 wobbly quadratic curves.
fn wobbly_segment(rng: &mut Rng, piece: &mut Piece, a: Pt, b: Pt) {
    let k = 1 + rng.below(3);
    let mut from = a;
    for j in 1..=k {
        let to = if j == k {
            b
        } else {
            let p = lerp(a, b, j as f32 / k as f32);
            (p.0 + rng.jitter(0.5), p.1 + rng.jitter(0.5))
        };
        let (dx, dy) = (to.0 - from.0, to.1 - from.1);
        let len = (dx * dx + dy * dy).sqrt().max(0.01);
        let bend = rng.jitter((0.16 * len).min(1.6));
        let mid = lerp(from, to, 0.5);
        let ctrl = (mid.0 - dy / len * bend, mid.1 + dx / len * bend);
        piece.segs.push(Seg::Quad(tenths(ctrl), tenths(to)));
        from = to;
    }
}

/// The end `end` of a piece coming from `from`, moved on its own: along the
/// stroke by -1.2..2 px (a gap or an overlap with the next piece, hidden by
/// the round caps) and sideways by up to 0.4 px.
fn loose_end(rng: &mut Rng, from: Pt, end: Pt) -> Pt {
    let u = direction(from, end);
    let along = rng.range(-1.2, 2.0).max(-0.3 * dist(from, end));
    add(add(end, mul(u, along)), mul(perp(u), rng.jitter(0.4)))
}

/// Draws one run of a polyline as a piece with loose ends, in either direction.
fn emit_run(rng: &mut Rng, run: &[Pt], out: &mut Vec<Piece>) {
    let n = run.len();
    if n < 2 {
        return;
    }
    let mut pts = run.to_vec();
    pts[0] = loose_end(rng, run[1], run[0]);
    pts[n - 1] = loose_end(rng, run[n - 2], run[n - 1]);
    if rng.chance(0.5) {
        pts.reverse();
    }
    let mut piece = Piece::new(pts[0]);
    for w in pts.windows(2) {
        wobbly_segment(rng, &mut piece, w[0], w[1]);
    }
    out.push(piece);
}

/// Cuts a polyline (canvas pixels) into pieces: at some of its corners and
/// at random points inside longer segments.
fn polyline_pieces(rng: &mut Rng, pts: &[Pt], out: &mut Vec<Piece>) {
    let Some(&first) = pts.first() else {
        return;
    };
    let mut run = vec![first];
    for (i, w) in pts.windows(2).enumerate() {
        let (a, b) = (w[0], w[1]);
        if dist(a, b) > 7.0 && rng.chance(0.45) {
            let cut = lerp(a, b, rng.range(0.3, 0.7));
            run.push(cut);
            emit_run(rng, &run, out);
            run = vec![cut];
        }
        run.push(b);
        if i + 2 < pts.len() && rng.chance(0.3) {
            emit_run(rng, &run, out);
            run = vec![b];
        }
    }
    emit_run(rng, &run, out);
}

/// Places and distorts one glyph, appending its strokes cut into pieces.
fn glyph_pieces(rng: &mut Rng, strokes: &[Stroke], at: &Placement, out: &mut Vec<Piece>) {
    // Jitter every distinct grid point once, so the shape stays coherent;
    // the pieces' own ends are loosened afterwards.
    let mut moved: Vec<(Pt, Pt)> = Vec::new();
    for stroke in strokes {
        let mut pts = Vec::with_capacity(stroke.len());
        for &p in *stroke {
            let q = match moved.iter().find(|(o, _)| *o == p) {
                Some(&(_, q)) => q,
                None => {
                    let (x, y) = at.apply(p);
                    let q = (x + rng.jitter(0.6), y + rng.jitter(0.6));
                    moved.push((p, q));
                    q
                }
            };
            pts.push(q);
        }
        polyline_pieces(rng, &pts, out);
    }
}

/// The part of polyline `pts` between arc lengths `from` and `to`.
fn sub_polyline(pts: &[Pt], from: f32, to: f32) -> Vec<Pt> {
    let mut out = Vec::new();
    let mut at = 0.0;
    for w in pts.windows(2) {
        let len = dist(w[0], w[1]);
        if len > 0.0 && at + len > from && at < to {
            if out.is_empty() {
                out.push(lerp(w[0], w[1], ((from - at) / len).clamp(0.0, 1.0)));
            }
            out.push(lerp(w[0], w[1], ((to - at) / len).clamp(0.0, 1.0)));
        }
        at += len;
    }
    out
}

/// A decoy cut from a random stroke of a random font glyph (1.2..3.2 grid
/// units of it), placed and distorted like a glyph at 0.35..0.6 of the glyph
/// size and cut into pieces like one.  With `away_from` (a glyph centre) its
/// first point lands on `anchor` and it points away from that centre, a spur
/// on the glyph's outline; otherwise its middle lands on `anchor`.
fn fragment_decoy(
    rng: &mut Rng,
    unit: f32,
    anchor: Pt,
    away_from: Option<Pt>,
    out: &mut Vec<Piece>,
) {
    let (_, strokes) = FONT[rng.below(FONT.len())];
    let stroke = strokes[rng.below(strokes.len())];
    let total: f32 = stroke.windows(2).map(|w| dist(w[0], w[1])).sum();
    let len = rng.range(1.2, 3.2).min(total);
    let from = rng.range(0.0, total - len);
    let part = sub_polyline(stroke, from, from + len);
    let scale = unit * rng.range(0.35, 0.6);
    let sx = scale * rng.range(0.85, 1.15);
    let at = Placement::new(rng, (0.0, 0.0), sx, scale, 25.0);
    let placed: Vec<Pt> = part.iter().map(|&p| at.apply(p)).collect();
    let (Some(&first), Some(&last)) = (placed.first(), placed.last()) else {
        return;
    };
    let mut pts: Vec<Pt> = match away_from {
        Some(centre) => {
            let shift = sub(anchor, first);
            let moved: Vec<Pt> = placed.iter().map(|&p| add(p, shift)).collect();
            let mean = mul(
                moved.iter().fold((0.0, 0.0), |acc, &p| add(acc, p)),
                1.0 / moved.len() as f32,
            );
            let (out_dir, body) = (sub(anchor, centre), sub(mean, anchor));
            if out_dir.0 * body.0 + out_dir.1 * body.1 < 0.0 {
                // Turn it round the anchor so it points outwards.
                moved.iter().map(|&p| sub(mul(anchor, 2.0), p)).collect()
            } else {
                moved
            }
        }
        None => {
            let shift = sub(anchor, lerp(first, last, 0.5));
            placed.iter().map(|&p| add(p, shift)).collect()
        }
    };
    for p in &mut pts {
        *p = clamp_to_canvas(*p);
    }
    polyline_pieces(rng, &pts, out);
}

fn random_point(rng: &mut Rng) -> Pt {
    (rng.range(4.0, WIDTH - 4.0), rng.range(6.0, HEIGHT - 6.0))
}

/// A short decoy hook styled like a glyph stroke: on top of the glyphs if
/// `anywhere`, otherwise above or below them (`unit` as for the glyphs).
fn decoy_hook(rng: &mut Rng, anywhere: bool, unit: f32) -> Piece {
    let edge = (HEIGHT / 2.0 - 3.6 * unit).max(5.0);
    let x = rng.range(4.0, WIDTH - 4.0);
    let start = match (anywhere, rng.below(2)) {
        (true, _) => random_point(rng),
        (false, 0) => (x, rng.range(3.0, edge)),
        (false, _) => (x, rng.range(HEIGHT - edge, HEIGHT - 3.0)),
    };
    let mut piece = Piece::new(start);
    let mut at = start;
    let mut heading = rng.range(0.0, std::f32::consts::TAU);
    for _ in 0..1 + rng.below(2) {
        heading += rng.jitter(1.5);
        let len = rng.range(3.0, 7.0);
        let to = clamp_to_canvas((at.0 + heading.cos() * len, at.1 + heading.sin() * len));
        let mid = lerp(at, to, 0.5);
        let ctrl = (mid.0 + rng.jitter(4.0), mid.1 + rng.jitter(4.0));
        piece.segs.push(Seg::Quad(tenths(ctrl), tenths(to)));
        at = to;
    }
    piece
}

/// A wavy line from the left part of the canvas to the right part, crossing
/// the glyphs between their bars (grid y about 1.5 or 4.7, away from the
/// bars at 0, 3 and 6); its regular waves keep it easy for a human to tell
/// apart.  It is cut into pieces of 2..=3 waves that overlap a little, so no
/// piece spans the canvas.  `unit` is the glyph grid unit in pixels.
fn wavy_line(rng: &mut Rng, unit: f32, out: &mut Vec<Piece>) {
    let (lo, hi) = if rng.below(2) == 0 {
        (-1.8, -1.3)
    } else {
        (1.5, 1.9)
    };
    let y = |rng: &mut Rng| HEIGHT / 2.0 + unit * rng.range(lo, hi);
    let band = lo.signum();
    let start = (rng.range(2.0, 30.0), y(rng));
    let end = (rng.range(WIDTH - 30.0, WIDTH - 2.0), y(rng));
    let parts = 6 + rng.below(4);
    let mut side = band;
    let mut from = start;
    let mut piece = Piece::new(start);
    let mut left = 2 + rng.below(2);
    for j in 1..=parts {
        let to = lerp(start, end, j as f32 / parts as f32);
        let mid = lerp(from, to, 0.5);
        let ctrl = (
            mid.0 + rng.jitter(3.0),
            mid.1 + side * unit * rng.range(1.0, 1.5),
        );
        piece.segs.push(Seg::Quad(tenths(ctrl), tenths(to)));
        left -= 1;
        if left == 0 && j < parts {
            // The next piece starts a little back along the curve.
            let back = direction(to, ctrl);
            let restart = add(
                add(to, mul(back, rng.range(1.0, 3.5))),
                mul(perp(back), rng.jitter(0.5)),
            );
            out.push(std::mem::replace(&mut piece, Piece::new(restart)));
            left = 2 + rng.below(2);
        }
        side = -side;
        from = to;
    }
    out.push(piece);
}

/// A thin straight-ish noise line broken into a few `l` segments.
fn noise_line(rng: &mut Rng) -> Piece {
    let start = (rng.range(0.0, 20.0), rng.range(2.0, HEIGHT - 2.0));
    let end = (rng.range(WIDTH - 20.0, WIDTH), rng.range(2.0, HEIGHT - 2.0));
    let mut piece = Piece::new(start);
    let parts = 2 + rng.below(3);
    for j in 1..=parts {
        let p = lerp(start, end, j as f32 / parts as f32);
        piece
            .segs
            .push(Seg::Line(tenths((p.0, p.1 + rng.jitter(2.0)))));
    }
    piece
}

/// Nudges on-curve points by a tenth of a pixel until no two pieces share
/// one, so exact endpoints never tell which pieces belong together.
fn separate_pieces<'a>(pieces: impl IntoIterator<Item = &'a mut Piece>) {
    let mut seen: HashSet<Tenths> = HashSet::new();
    for piece in pieces {
        let mut own = Vec::with_capacity(piece.segs.len() + 1);
        let points =
            std::iter::once(&mut piece.start).chain(piece.segs.iter_mut().map(Seg::end_mut));
        for p in points {
            while seen.contains(p) {
                p.0 += 1;
            }
            own.push(*p);
        }
        seen.extend(own);
    }
}

/// Writes a number given in tenths with at most one decimal.
fn push_num(out: &mut String, v: i32) {
    if v < 0 {
        out.push('-');
    }
    let a = v.unsigned_abs();
    out.push_str(&(a / 10).to_string());
    match a % 10 {
        0 => {}
        frac => {
            out.push('.');
            out.push_str(&frac.to_string());
        }
    }
}

fn push_cmd(out: &mut String, cmd: char, cur: Tenths, pts: &[Tenths]) {
    out.push(cmd);
    for (i, p) in pts.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        push_num(out, p.0 - cur.0);
        out.push(' ');
        push_num(out, p.1 - cur.1);
    }
}

/// Path data for several pieces, using only relative `m`, `l` and `q`.
fn path_data(pieces: &[Piece]) -> String {
    let mut d = String::new();
    let mut cur = (0, 0);
    for piece in pieces {
        push_cmd(&mut d, 'm', cur, &[piece.start]);
        cur = piece.start;
        for seg in &piece.segs {
            match *seg {
                Seg::Line(p) => {
                    push_cmd(&mut d, 'l', cur, &[p]);
                    cur = p;
                }
                Seg::Quad(c, p) => {
                    push_cmd(&mut d, 'q', cur, &[c, p]);
                    cur = p;
                }
            }
        }
    }
    d
}

fn path_element(pieces: &[Piece], colour: &str, width_tenths: i32) -> String {
    let mut w = String::new();
    push_num(&mut w, width_tenths);
    format!(
        "<path d=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"{w}\" \
         stroke-linecap=\"round\" stroke-linejoin=\"round\"/>",
        path_data(pieces)
    )
}

/// A style (`0..classes`) for every piece of `pool`, where `glyphs[i]` is
/// the range of glyph `i`'s pieces.  A glyph's pieces mostly share the
/// glyph's style (never the one of its left neighbour, so a human sees where
/// characters part), decoys mostly take the style of the glyph nearest to
/// them, and any piece may take any style: a style is never one glyph, and a
/// glyph is never one style.
fn piece_styles(
    rng: &mut Rng,
    pool: &[Piece],
    glyphs: &[std::ops::Range<usize>],
    places: &[Placement],
    classes: usize,
) -> Vec<usize> {
    let mut own = Vec::with_capacity(places.len());
    let mut style = rng.below(classes);
    for _ in places {
        style = (style + 1 + rng.below(classes - 1)) % classes;
        own.push(style);
    }
    let nearest = |x: f32| {
        (0..places.len()).min_by(|&a, &b| {
            let (da, db) = ((places[a].cx - x).abs(), (places[b].cx - x).abs());
            da.total_cmp(&db)
        })
    };
    pool.iter()
        .enumerate()
        .map(|(i, piece)| {
            let near = match glyphs.iter().position(|r| r.contains(&i)) {
                Some(g) => Some((g, 0.6)),
                None => nearest(from_tenths(piece.start).0).map(|g| (g, 0.5)),
            };
            match near {
                Some((g, p)) if rng.chance(p) => own[g],
                _ => rng.below(classes),
            }
        })
        .collect()
}

/// Emits the (shuffled) pool of (style, piece) as one `<path>` per style
/// (`classes` of them): dark colours of well separated random hues and
/// stroke widths 1.8..=3.2.
fn styled_paths(rng: &mut Rng, pool: Vec<(usize, Piece)>, classes: usize) -> Vec<String> {
    let mut groups: Vec<Vec<Piece>> = (0..classes).map(|_| Vec::new()).collect();
    for (k, piece) in pool {
        if let Some(g) = groups.get_mut(k) {
            g.push(piece);
        }
    }
    let base = rng.unit();
    let step = 1.0 / classes as f32;
    groups
        .iter()
        .enumerate()
        .filter(|(_, g)| !g.is_empty())
        .map(|(k, g)| {
            let hue = base + k as f32 * step + rng.jitter(0.05);
            let colour = rng.dark_hue(hue);
            path_element(g, &colour, 18 + rng.below(15) as i32)
        })
        .collect()
}

fn dot(rng: &mut Rng) -> String {
    let (x, y) = tenths(random_point(rng));
    let mut s = String::from("<circle cx=\"");
    push_num(&mut s, x);
    s.push_str("\" cy=\"");
    push_num(&mut s, y);
    s.push_str("\" r=\"");
    push_num(&mut s, 6 + rng.below(8) as i32);
    s.push_str("\" fill=\"");
    s.push_str(&rng.dark_colour());
    s.push_str("\"/>");
    s
}

/// Decoys cut from the font, drawn like glyph pieces and appended to
/// `pool`, where `glyphs[i]` is the range of glyph `i`'s pieces: some spur
/// off a glyph, some sit between neighbours, some anywhere.
fn fragment_decoys(
    rng: &mut Rng,
    places: &[Placement],
    glyphs: &[std::ops::Range<usize>],
    unit: f32,
    pool: &mut Vec<Piece>,
) {
    let touching: Vec<(Pt, Pt)> = (0..places.len() / 3 + rng.below(2))
        .filter_map(|_| {
            let g = rng.below(glyphs.len().max(1));
            let (at, range) = (places.get(g)?, glyphs.get(g)?.clone());
            let piece = pool.get(range.start + rng.below(range.len().max(1)))?;
            let points: Vec<Tenths> = piece.on_curve().collect();
            let on = from_tenths(points[rng.below(points.len())]);
            let heading = rng.range(0.0, std::f32::consts::TAU);
            let r = rng.range(0.6, 2.5);
            Some((
                add(on, (heading.cos() * r, heading.sin() * r)),
                (at.cx, at.cy),
            ))
        })
        .collect();
    for (anchor, centre) in touching {
        fragment_decoy(rng, unit, anchor, Some(centre), pool);
    }
    for pair in places.windows(2) {
        if rng.chance(0.4) {
            let anchor = (
                (pair[0].cx + pair[1].cx) / 2.0 + rng.jitter(2.0),
                HEIGHT / 2.0 + rng.jitter(10.0),
            );
            fragment_decoy(rng, unit, anchor, None, pool);
        }
    }
    for _ in 0..1 + rng.below(2) {
        let anchor = random_point(rng);
        fragment_decoy(rng, unit, anchor, None, pool);
    }
}

/// Draws `answer` (characters of ALPHABET, 1..=8 of them) as an SVG of width 160 x height 60
/// (viewBox "0 0 160 60"). `rnd` yields uniformly random u32s (the caller passes a CSPRNG).
pub fn draw(answer: &str, rnd: &mut dyn FnMut() -> u32) -> String {
    let mut rng = Rng { next: rnd };
    let glyphs: Vec<&[Stroke]> = answer
        .bytes()
        .filter_map(|c| FONT.iter().find(|(k, _)| *k == c).map(|(_, g)| *g))
        .collect();
    let unit = glyph_unit(glyphs.len());
    let places = layout(&mut rng, glyphs.len(), unit);

    let mut pool = Vec::new();
    let mut ranges = Vec::with_capacity(glyphs.len());
    for (strokes, at) in glyphs.iter().zip(&places) {
        let first = pool.len();
        glyph_pieces(&mut rng, strokes, at, &mut pool);
        ranges.push(first..pool.len());
    }
    fragment_decoys(&mut rng, &places, &ranges, unit, &mut pool);
    for _ in 0..1 + rng.below(2) {
        let anywhere = rng.chance(0.5);
        pool.push(decoy_hook(&mut rng, anywhere, unit));
    }
    // The wavy line and the noise lines are thinner than any glyph stroke,
    // so a human tells them apart; each gets a path of its own.
    let mut wave = Vec::new();
    wavy_line(&mut rng, unit, &mut wave);
    let mut lines: Vec<Piece> = (0..1 + rng.below(2))
        .map(|_| noise_line(&mut rng))
        .collect();
    separate_pieces(pool.iter_mut().chain(&mut wave).chain(&mut lines));
    let classes = 4 + rng.below(3);
    let styles = piece_styles(&mut rng, &pool, &ranges, &places, classes);
    let mut pool: Vec<(usize, Piece)> = styles.into_iter().zip(pool).collect();
    rng.shuffle(&mut pool);

    let mut elements = styled_paths(&mut rng, pool, classes);
    let colour = rng.dark_colour();
    elements.push(path_element(&wave, &colour, 12 + rng.below(5) as i32));
    for line in lines {
        let colour = rng.dark_colour();
        elements.push(path_element(&[line], &colour, 7 + rng.below(6) as i32));
    }
    for _ in 0..rng.below(5) {
        elements.push(dot(&mut rng));
    }
    rng.shuffle(&mut elements);

    let mut svg = String::from(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"160\" height=\"60\" viewBox=\"0 0 160 60\">\n",
    );
    svg.push_str(&format!(
        "<rect width=\"160\" height=\"60\" fill=\"{}\"/>\n",
        rng.light_colour()
    ));
    for e in elements {
        svg.push_str(&e);
        svg.push('\n');
    }
    svg.push_str("</svg>");
    svg
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::captcha::ALPHABET;
    use std::collections::{HashMap, HashSet};

    /// splitmix64 stream as a `rnd` closure.
    fn stream(seed: u64) -> impl FnMut() -> u32 {
        let mut s = seed;
        move || {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 32) as u32
        }
    }

    fn random_answer(r: &mut dyn FnMut() -> u32) -> String {
        let n = 1 + (r() % 8) as usize;
        (0..n)
            .map(|_| ALPHABET[(r() as usize) % ALPHABET.len()] as char)
            .collect()
    }

    fn attribute_values(svg: &str) -> Vec<&str> {
        svg.split("=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap_or(""))
            .collect()
    }

    fn d_values(svg: &str) -> HashSet<String> {
        svg.split(" d=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap_or("").to_string())
            .collect()
    }

    fn check_markup(svg: &str) {
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.ends_with("</svg>"), "{svg}");
        for bad in [
            "<text", "<tspan", "font", "<title", "<desc", "id=", "class=", "<!--",
        ] {
            assert!(!svg.contains(bad), "found {bad}: {svg}");
        }
        for after in svg.split('>').skip(1) {
            let data = after.split('<').next().unwrap_or("");
            assert!(data.trim().is_empty(), "character data {data:?}");
        }
        for v in attribute_values(svg) {
            assert!(
                !v.bytes().any(|b| b.is_ascii_uppercase()),
                "uppercase in {v:?}"
            );
        }
        for d in d_values(svg) {
            assert!(d.starts_with('m'), "{d}");
            assert!(d.chars().all(|c| "mlqc0123456789.- ".contains(c)), "{d}");
            for num in d.split(|c: char| "mlqc ".contains(c)) {
                if let Some((_, frac)) = num.split_once('.') {
                    assert!(frac.len() <= 1, "too many decimals: {num}");
                }
            }
        }
    }

    #[test]
    fn every_alphabet_glyph_has_a_font_entry() {
        for &c in ALPHABET {
            let entries = FONT.iter().filter(|(k, _)| *k == c).count();
            assert_eq!(entries, 1, "glyph {}", c as char);
        }
        assert_eq!(FONT.len(), ALPHABET.len());
        for (c, strokes) in FONT {
            assert!(!strokes.is_empty(), "glyph {}", *c as char);
            for stroke in *strokes {
                assert!(stroke.len() >= 2, "glyph {}", *c as char);
                for &(x, y) in *stroke {
                    assert!((-0.5..=4.5).contains(&x) && (-0.5..=6.5).contains(&y));
                }
            }
        }
    }

    #[test]
    fn markup_leaks_nothing() {
        let mut answers = stream(1);
        let mut rnd = stream(2);
        for _ in 0..300 {
            let answer = random_answer(&mut answers);
            let svg = draw(&answer, &mut rnd);
            check_markup(&svg);
            assert!(!svg.contains(&format!(">{answer}<")));
        }
    }

    #[test]
    fn odd_input_and_degenerate_randomness_do_not_panic() {
        let mut rnd = stream(3);
        for answer in [
            "",
            "abc",
            "0O1I!é",
            "K7P2Q",
            "ABCDEFGHJKLMNPQRSTUVWXYZ23456789",
        ] {
            check_markup(&draw(answer, &mut rnd));
        }
        check_markup(&draw("WMNH3", &mut || 0));
        check_markup(&draw("WMNH3", &mut || u32::MAX));
    }

    #[test]
    fn same_answer_never_draws_the_same() {
        for seed in 0..50 {
            let a = draw("SZ5G8", &mut stream(seed));
            let b = draw("SZ5G8", &mut stream(seed + 1000));
            assert_ne!(a, b);
            let (da, db) = (d_values(&a), d_values(&b));
            assert!(!da.is_empty());
            assert!(da.is_disjoint(&db), "shared path data");
        }
    }

    /// The on-curve points (start and segment ends, absolute tenths) of
    /// every `m`-started piece of every path.
    fn pieces_of(svg: &str) -> Vec<Vec<(i64, i64)>> {
        let mut pieces: Vec<Vec<(i64, i64)>> = Vec::new();
        for d in svg
            .split(" d=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap_or(""))
        {
            let spaced: String = d
                .chars()
                .flat_map(|c| {
                    let letter = c.is_ascii_alphabetic();
                    [letter.then_some(' '), Some(c), letter.then_some(' ')]
                })
                .flatten()
                .collect();
            let mut cur = (0, 0);
            let mut cmd = "";
            let mut args: Vec<i64> = Vec::new();
            for tok in spaced.split_whitespace().chain(["m"]) {
                if tok.bytes().all(|b| b.is_ascii_alphabetic()) {
                    if let [.., dx, dy] = args[..] {
                        cur = (cur.0 + dx, cur.1 + dy);
                        if cmd == "m" {
                            pieces.push(Vec::new());
                        }
                        pieces.last_mut().expect("path starts with m").push(cur);
                    }
                    cmd = tok;
                    args.clear();
                } else {
                    let v: f64 = tok.parse().expect("number");
                    args.push((v * 10.0).round() as i64);
                }
            }
        }
        pieces
    }

    #[test]
    fn no_two_pieces_share_an_on_curve_point() {
        let mut answers = stream(6);
        let mut rnd = stream(7);
        for _ in 0..300 {
            let answer = random_answer(&mut answers);
            let svg = draw(&answer, &mut rnd);
            let pieces = pieces_of(&svg);
            assert!(pieces.len() > answer.len(), "{svg}");
            let mut owner: HashMap<(i64, i64), usize> = HashMap::new();
            for (i, piece) in pieces.iter().enumerate() {
                for &p in piece {
                    let first = *owner.entry(p).or_insert(i);
                    assert_eq!(first, i, "pieces {first} and {i} share {p:?}: {svg}");
                }
            }
        }
    }

    #[test]
    fn size_is_bounded() {
        let mut answers = stream(4);
        let mut rnd = stream(5);
        for _ in 0..200 {
            let five: String = (0..5)
                .map(|_| ALPHABET[answers() as usize % ALPHABET.len()] as char)
                .collect();
            let svg = draw(&five, &mut rnd);
            assert!(svg.len() < 6 * 1024, "{} bytes for {five}", svg.len());
            let eight = format!("{five}WMN");
            assert!(draw(&eight, &mut rnd).len() < 9 * 1024);
        }
    }
}
