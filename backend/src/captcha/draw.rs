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
//!   yields the same markup twice.
//!
//! What it does not defend against: rendering the SVG and running OCR (or a
//! trained model) on the image, and human solving farms.  That is the normal
//! limit of any image captcha; rate limiting has to cover the rest.

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

/// A connected run of segments; on output it starts with its own `m`.
struct Piece {
    start: Tenths,
    segs: Vec<Seg>,
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

/// Pixels per font grid unit (before random scaling) for `n` glyphs.
fn glyph_unit(n: usize) -> f32 {
    let slot = (WIDTH - 2.0 * MARGIN) / n.max(1) as f32;
    (slot * 0.7 / 4.0).min(5.0)
}

/// Where and how one glyph is placed: grid point -> canvas pixel.
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
    /// Random placement of glyph `i` of `n`, spread across the canvas width.
    fn random(rng: &mut Rng, i: usize, n: usize) -> Placement {
        let slot = (WIDTH - 2.0 * MARGIN) / n.max(1) as f32;
        let scale = glyph_unit(n) * rng.range(0.9, 1.15);
        let angle = rng.jitter(20.0).to_radians();
        Placement {
            cx: MARGIN + slot * (i as f32 + 0.5) + rng.jitter(slot * 0.08),
            cy: HEIGHT / 2.0 + rng.jitter(4.0),
            sx: scale * rng.range(0.92, 1.08),
            sy: scale,
            shear: rng.jitter(0.2),
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

fn tenths((x, y): Pt) -> Tenths {
    ((x * 10.0).round() as i32, (y * 10.0).round() as i32)
}

fn lerp(a: Pt, b: Pt, t: f32) -> Pt {
    (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
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

/// Places and distorts one glyph, returning its strokes cut into pieces.
fn glyph_pieces(rng: &mut Rng, strokes: &[Stroke], at: &Placement) -> Vec<Piece> {
    // Jitter every distinct grid point once, so closed shapes stay closed
    // and strokes that meet keep meeting.
    let mut moved: Vec<(Pt, Pt)> = Vec::new();
    let mut place = |rng: &mut Rng, p: Pt| -> Pt {
        if let Some(&(_, q)) = moved.iter().find(|(o, _)| *o == p) {
            return q;
        }
        let (x, y) = at.apply(p);
        let q = (x + rng.jitter(0.6), y + rng.jitter(0.6));
        moved.push((p, q));
        q
    };
    let mut pieces = Vec::new();
    for stroke in strokes {
        let pts: Vec<Pt> = stroke.iter().map(|&p| place(rng, p)).collect();
        let Some((&first, rest)) = pts.split_first() else {
            continue;
        };
        let mut piece = Piece {
            start: tenths(first),
            segs: Vec::new(),
        };
        let mut prev = first;
        for (i, &p) in rest.iter().enumerate() {
            wobbly_segment(rng, &mut piece, prev, p);
            prev = p;
            // Sometimes break the polyline here so pieces do not map to strokes.
            if i + 1 < rest.len() && rng.below(4) == 0 {
                let next = Piece {
                    start: tenths(p),
                    segs: Vec::new(),
                };
                pieces.push(std::mem::replace(&mut piece, next));
            }
        }
        pieces.push(piece);
    }
    pieces
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
    let mut piece = Piece {
        start: tenths(start),
        segs: Vec::new(),
    };
    let mut at = start;
    let mut heading = rng.range(0.0, std::f32::consts::TAU);
    for _ in 0..1 + rng.below(2) {
        heading += rng.jitter(1.5);
        let len = rng.range(3.0, 7.0);
        let to = (
            (at.0 + heading.cos() * len).clamp(2.0, WIDTH - 2.0),
            (at.1 + heading.sin() * len).clamp(2.0, HEIGHT - 2.0),
        );
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
/// apart.  `unit` is the glyph grid unit in pixels.
fn wavy_line(rng: &mut Rng, unit: f32) -> Piece {
    let (lo, hi) = if rng.below(2) == 0 {
        (-1.8, -1.3)
    } else {
        (1.5, 1.9)
    };
    let y = |rng: &mut Rng| HEIGHT / 2.0 + unit * rng.range(lo, hi);
    let band = lo.signum();
    let start = (rng.range(2.0, 30.0), y(rng));
    let end = (rng.range(WIDTH - 30.0, WIDTH - 2.0), y(rng));
    let mut piece = Piece {
        start: tenths(start),
        segs: Vec::new(),
    };
    let parts = 6 + rng.below(4);
    let mut side = band;
    let mut from = start;
    for j in 1..=parts {
        let to = lerp(start, end, j as f32 / parts as f32);
        let mid = lerp(from, to, 0.5);
        let ctrl = (
            mid.0 + rng.jitter(3.0),
            mid.1 + side * unit * rng.range(1.0, 1.5),
        );
        piece.segs.push(Seg::Quad(tenths(ctrl), tenths(to)));
        side = -side;
        from = to;
    }
    piece
}

/// A thin straight-ish noise line broken into a few `l` segments.
fn noise_line(rng: &mut Rng) -> Piece {
    let start = (rng.range(0.0, 20.0), rng.range(2.0, HEIGHT - 2.0));
    let end = (rng.range(WIDTH - 20.0, WIDTH), rng.range(2.0, HEIGHT - 2.0));
    let mut piece = Piece {
        start: tenths(start),
        segs: Vec::new(),
    };
    let parts = 2 + rng.below(3);
    for j in 1..=parts {
        let p = lerp(start, end, j as f32 / parts as f32);
        piece
            .segs
            .push(Seg::Line(tenths((p.0, p.1 + rng.jitter(2.0)))));
    }
    piece
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

/// Emits the shuffled pool as one `<path>` per style class (dark colours of
/// well separated random hues, stroke width 2.2..=3.4); each class holds
/// pieces of several glyphs and decoys in shuffled order.
fn grouped_paths(rng: &mut Rng, pool: Vec<(usize, Piece)>, classes: usize) -> Vec<String> {
    let mut groups: Vec<Vec<Piece>> = (0..classes).map(|_| Vec::new()).collect();
    for (class, piece) in pool {
        if let Some(g) = groups.get_mut(class) {
            g.push(piece);
        }
    }
    let base = rng.unit();
    let step = 1.0 / classes.max(1) as f32;
    groups
        .iter()
        .enumerate()
        .filter(|(_, g)| !g.is_empty())
        .map(|(k, g)| {
            let hue = base + k as f32 * step + rng.jitter(0.05);
            let colour = rng.dark_hue(hue);
            path_element(g, &colour, 22 + rng.below(13) as i32)
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

/// Draws `answer` (characters of ALPHABET, 1..=8 of them) as an SVG of width 160 x height 60
/// (viewBox "0 0 160 60"). `rnd` yields uniformly random u32s (the caller passes a CSPRNG).
pub fn draw(answer: &str, rnd: &mut dyn FnMut() -> u32) -> String {
    let mut rng = Rng { next: rnd };
    let glyphs: Vec<&[Stroke]> = answer
        .bytes()
        .filter_map(|c| FONT.iter().find(|(k, _)| *k == c).map(|(_, g)| *g))
        .collect();

    // Every piece gets a random style class; a glyph keeps one class, never
    // the one of its left neighbour, so a human sees where characters part.
    let classes = 3 + rng.below(2);
    let mut pool = Vec::new();
    let mut class = rng.below(classes);
    for (i, strokes) in glyphs.iter().enumerate() {
        let at = Placement::random(&mut rng, i, glyphs.len());
        class = (class + 1 + rng.below(classes - 1)) % classes;
        let pieces = glyph_pieces(&mut rng, strokes, &at);
        pool.extend(pieces.into_iter().map(|p| (class, p)));
    }
    // 5..=9 decoys: one wavy line across the glyphs plus short hooks.
    let unit = glyph_unit(glyphs.len());
    let wave = wavy_line(&mut rng, unit);
    pool.push((rng.below(classes), wave));
    for i in 0..4 + rng.below(5) {
        let hook = decoy_hook(&mut rng, i == 0, unit);
        pool.push((rng.below(classes), hook));
    }
    rng.shuffle(&mut pool);

    let mut elements = grouped_paths(&mut rng, pool, classes);
    // Noise lines need a thinner width, so each gets its own path.
    for _ in 0..1 + rng.below(3) {
        let line = noise_line(&mut rng);
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
    use crate::captcha::ALPHABET;
    use std::collections::HashSet;

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
