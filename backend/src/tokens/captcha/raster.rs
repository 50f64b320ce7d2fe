//! Drawing a captcha as pixels: a short code in a stroke font of our own, each glyph rotated,
//! sheared and jittered, one glyph-wide and one thin line across it, thin decoy hooks and
//! ink drops over it, soft blobs under it, then the whole picture bent by a gentle wave, as a
//! grayscale PNG.
//!
//! What the shopper receives is pixels only: no glyph geometry, no path data, nothing a
//! script can fit a font to (the SVG captcha's weakness: an outside solver read 22% of them
//! from the markup). What stays for people: a few large, high-contrast glyphs of an alphabet
//! without look-alikes (`font::ALPHABET`), decoys drawn thinner than glyph strokes.
//! What it does not stop: a solver trained on many labelled pictures, and human solving
//! farms; the proof of work before the captcha and the rate limits price those.

use tiny_skia::{
    Color, FillRule, LineCap, LineJoin, Paint, PathBuilder, Pixmap, Stroke, Transform,
};

use std::f32::consts::TAU;

use super::font::{self, Pt};
use super::style::Style;

/// The picture's size in pixels; the page shows it at up to this many CSS pixels wide and
/// scales it down to the screen (at least ~240 x 80 CSS px on a 390 px phone).
pub const WIDTH: u32 = 300;
pub const HEIGHT: u32 = 100;

/// A source of random numbers (the OS's in production, a fixed seed in tests).
pub struct Rng<'a>(pub &'a mut dyn FnMut() -> u32);

impl Rng<'_> {
    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.0)() as f32 / u32::MAX as f32)
    }

    fn pick<'b, T>(&mut self, items: &'b [T]) -> &'b T {
        &items[((self.0)() as usize) % items.len()]
    }
}

/// Dark inks for glyphs and lines; light ones for the blobs under them.
const INKS: &[(u8, u8, u8)] = &[
    (20, 32, 70),
    (70, 20, 30),
    (20, 60, 35),
    (45, 35, 20),
    (30, 30, 30),
];

/// The PNG of `answer` (characters of `font::ALPHABET`) in the hand `style`.
pub fn draw(answer: &str, rng: &mut Rng, style: &Style) -> Vec<u8> {
    let mut canvas = Pixmap::new(WIDTH, HEIGHT).expect("a captcha's size is fixed and not zero");
    let bg = rng.range(232.0, 248.0) as u8;
    canvas.fill(Color::from_rgba8(bg, bg, bg.saturating_sub(6), 255));
    blobs(&mut canvas, rng);
    glyphs(&mut canvas, answer, rng, style);
    crossing_lines(&mut canvas, rng);
    hooks(&mut canvas, rng, style);
    png(&bend(&canvas, rng))
}

fn paint(rgb: (u8, u8, u8), alpha: u8) -> Paint<'static> {
    let mut p = Paint::default();
    p.set_color_rgba8(rgb.0, rgb.1, rgb.2, alpha);
    p.anti_alias = true;
    p
}

fn stroke(width: f32) -> Stroke {
    Stroke {
        width,
        line_cap: LineCap::Round,
        line_join: LineJoin::Round,
        ..Stroke::default()
    }
}

/// Soft light-grey shapes under the text: a thresholding OCR sees them, a person does not.
fn blobs(canvas: &mut Pixmap, rng: &mut Rng) {
    for _ in 0..7 {
        let (cx, cy) = (rng.range(0.0, WIDTH as f32), rng.range(0.0, HEIGHT as f32));
        let r = rng.range(10.0, 28.0);
        if let Some(circle) = PathBuilder::from_circle(cx, cy, r) {
            let grey = rng.range(150.0, 205.0) as u8;
            canvas.fill_path(
                &circle,
                &paint((grey, grey, grey), 90),
                FillRule::Winding,
                Transform::identity(),
                None,
            );
        }
    }
}

/// The code in the deployment's hand (`style`): glyphs about 50–60 px tall, each on its own
/// slant and size around the hand's, spaced by the hand's spacing (touching, overlapping)
/// with a jitter of their own, the whole word placed anywhere it fits, its baseline on a
/// slow wave. Neither where a glyph stands nor how many there are can be known in advance.
fn glyphs(canvas: &mut Pixmap, answer: &str, rng: &mut Rng, style: &Style) {
    let n = answer.len().max(1);
    let mut height = rng.range(50.0, 60.0);
    let advances: Vec<f32> = (0..n)
        .map(|_| style.spacing * rng.range(0.9, 1.1))
        .collect();
    // Glyph widths (the stroke's included), and the word's width; a word too wide for the
    // picture is drawn smaller.
    let width_of = |h: f32| h / 6.0 * 4.0 * style.aspect + style.stroke;
    let word = |h: f32| width_of(h) * (1.0 + advances[..n - 1].iter().sum::<f32>());
    if word(height) > WIDTH as f32 - 24.0 {
        height *= (WIDTH as f32 - 24.0) / word(height);
    }
    let room = WIDTH as f32 - 12.0 - word(height);
    let mut x = rng.range(12.0, 12.0 + room.max(0.0)) + width_of(height) / 2.0;
    let wave = (
        rng.range(0.0, TAU),
        style.wave * rng.range(0.7, 1.2),
        rng.range(0.8, 1.4),
    );
    for (i, c) in answer.bytes().enumerate() {
        let h = height * rng.range(0.93, 1.07);
        let unit = h / 6.0;
        let cy = HEIGHT as f32 / 2.0
            + wave.1 * (wave.0 + i as f32 * wave.2).sin()
            + rng.range(-3.0, 3.0);
        let t = Transform::from_translate(x + rng.range(-2.0, 2.0), cy)
            .pre_rotate(rng.range(-8.0, 8.0))
            .pre_concat(Transform::from_row(
                1.0,
                0.0,
                style.slant + rng.range(-0.1, 0.1),
                1.0,
                0.0,
                0.0,
            ))
            .pre_scale(unit * style.aspect * rng.range(0.92, 1.08), unit)
            .pre_translate(-2.0, -3.0);
        let ink = *rng.pick(INKS);
        let width = style.stroke * rng.range(0.92, 1.08);
        for s in style.glyph(c) {
            if let Some(path) = polyline(s, rng, 0.12) {
                canvas.stroke_path(&path, &paint(ink, 255), &stroke(width / unit), t, None);
            }
        }
        x += width_of(height) * advances[i];
    }
}

/// A polyline through `pts`, each point moved by up to `jitter` grid units.
fn polyline(pts: &[Pt], rng: &mut Rng, jitter: f32) -> Option<tiny_skia::Path> {
    let mut pb = PathBuilder::new();
    for (i, (x, y)) in pts.iter().enumerate() {
        let (x, y) = (
            x + rng.range(-jitter, jitter),
            y + rng.range(-jitter, jitter),
        );
        if i == 0 {
            pb.move_to(x, y);
        } else {
            pb.line_to(x, y);
        }
    }
    pb.finish()
}

/// A long curve across the picture through the text band.
fn across(rng: &mut Rng) -> Option<tiny_skia::Path> {
    let mut pb = PathBuilder::new();
    let h = HEIGHT as f32;
    pb.move_to(0.0, rng.range(0.25 * h, 0.75 * h));
    pb.cubic_to(
        rng.range(60.0, 120.0),
        rng.range(0.0, h),
        rng.range(180.0, 240.0),
        rng.range(0.0, h),
        WIDTH as f32,
        rng.range(0.25 * h, 0.75 * h),
    );
    pb.finish()
}

/// Two long curves through the text: one as wide as a glyph stroke (a recogniser cannot
/// thin it away without thinning the glyphs; people read through it), one thin.
fn crossing_lines(canvas: &mut Pixmap, rng: &mut Rng) {
    for i in 0..2 {
        let Some(path) = across(rng) else { continue };
        let ink = *rng.pick(INKS);
        let width = if i == 0 {
            rng.range(4.0, 5.0)
        } else {
            rng.range(1.6, 2.4)
        };
        canvas.stroke_path(
            &path,
            &paint(ink, 255),
            &stroke(width),
            Transform::identity(),
            None,
        );
    }
    // Ink drops, smaller than a stroke is wide, in the text band.
    for _ in 0..8 {
        let (cx, cy) = (
            rng.range(10.0, WIDTH as f32 - 10.0),
            rng.range(18.0, HEIGHT as f32 - 18.0),
        );
        if let Some(drop) = PathBuilder::from_circle(cx, cy, rng.range(1.8, 2.6)) {
            let ink = *rng.pick(INKS);
            canvas.fill_path(
                &drop,
                &paint(ink, 255),
                FillRule::Winding,
                Transform::identity(),
                None,
            );
        }
    }
}

/// Short thin hooks cut from the font, anywhere: strokes an OCR may take for parts of
/// letters; people see them for the scribbles they are (half the glyphs' stroke width).
fn hooks(canvas: &mut Pixmap, rng: &mut Rng, style: &Style) {
    for _ in 0..5 {
        let c = *rng.pick(font::ALPHABET);
        let strokes = style.glyph(c);
        let s = rng.pick(strokes);
        let take = 2.min(s.len());
        let from = ((rng.0)() as usize) % (s.len() - take + 1);
        let unit = rng.range(5.0, 9.0);
        let t =
            Transform::from_translate(rng.range(0.0, WIDTH as f32), rng.range(0.0, HEIGHT as f32))
                .pre_rotate(rng.range(0.0, 360.0))
                .pre_scale(unit, unit);
        if let Some(path) = polyline(&s[from..from + take], rng, 0.3) {
            let ink = *rng.pick(INKS);
            canvas.stroke_path(&path, &paint(ink, 230), &stroke(2.2 / unit), t, None);
        }
    }
}

/// The whole picture bent by two sine waves (x by y, y by x), sampled bilinearly.
fn bend(src: &Pixmap, rng: &mut Rng) -> Vec<u8> {
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let luma: Vec<f32> = src
        .pixels()
        .iter()
        .map(|p| {
            let c = p.demultiply();
            0.299 * c.red() as f32 + 0.587 * c.green() as f32 + 0.114 * c.blue() as f32
        })
        .collect();
    let (ax, px, fx) = (
        rng.range(2.0, 3.5),
        rng.range(50.0, 80.0),
        rng.range(0.0, TAU),
    );
    let (ay, py, fy) = (
        rng.range(2.0, 3.5),
        rng.range(70.0, 120.0),
        rng.range(0.0, TAU),
    );
    let at = |x: isize, y: isize| -> f32 {
        let x = x.clamp(0, w as isize - 1) as usize;
        let y = y.clamp(0, h as isize - 1) as usize;
        luma[y * w + x]
    };
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let sx = x as f32 + ax * (y as f32 / px * TAU + fx).sin();
            let sy = y as f32 + ay * (x as f32 / py * TAU + fy).sin();
            let (x0, y0) = (sx.floor(), sy.floor());
            let (dx, dy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as isize, y0 as isize);
            let top = at(x0, y0) * (1.0 - dx) + at(x0 + 1, y0) * dx;
            let bottom = at(x0, y0 + 1) * (1.0 - dx) + at(x0 + 1, y0 + 1) * dx;
            let v = (top * (1.0 - dy) + bottom * dy).round().clamp(0.0, 255.0);
            out.push(v as u8);
        }
    }
    out
}

/// A grayscale PNG of the bent picture.
fn png(gray: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(gray.len() / 2);
    let mut enc = png::Encoder::new(&mut out, WIDTH, HEIGHT);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    // Writing into a Vec with the size given above cannot fail.
    let mut writer = enc
        .write_header()
        .expect("a PNG header always fits into a Vec");
    writer
        .write_image_data(gray)
        .expect("the image data has exactly WIDTH x HEIGHT bytes");
    drop(writer);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded(seed: u64) -> impl FnMut() -> u32 {
        let mut s = seed | 1;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 16) as u32
        }
    }

    #[test]
    fn a_captcha_is_a_small_grayscale_png() {
        let mut next = seeded(7);
        let png = draw("K4P3C", &mut Rng(&mut next), &Style::public());
        assert_eq!(&png[1..4], b"PNG");
        let decoder = png::Decoder::new(png.as_slice());
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert!(png.len() < 40_000, "{} bytes", png.len());
    }

    #[test]
    fn the_same_code_never_draws_the_same_picture() {
        let mut next = seeded(11);
        let a = draw("K4P3C", &mut Rng(&mut next), &Style::public());
        let b = draw("K4P3C", &mut Rng(&mut next), &Style::public());
        assert_ne!(a, b);
    }
}
