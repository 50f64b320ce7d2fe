//! The captcha's stroke font: every glyph a few polylines on a 4 x 6 grid (x to the right, y
//! down), drawn by [`super::raster`] as thick strokes. Only characters nobody confuses are
//! in it: no 0/O/D-alikes beyond D, no 1/I/L, no 2/Z, no 5/S, no 8/B, no 6/G pair (G is
//! out), no A/K/N trio (K alone), no V/Y (neither), no X (a K rotated a little), and none
//! of the pairs one bar apart that people misread when a line crosses them (issue 32: F/E,
//! R/P, 7/T; E, P and T stay).

/// A point of the grid.
pub type Pt = (f32, f32);
/// One polyline of a glyph.
pub type Stroke = &'static [Pt];

/// The characters a code is drawn from: exactly the font's.
pub const ALPHABET: &[u8] = b"CDEHJKMPTUW3469";

/// The strokes of `c` (an upper-case letter or digit of [`ALPHABET`]).
pub fn glyph(c: u8) -> &'static [Stroke] {
    FONT.iter()
        .find(|(k, _)| *k == c)
        .map(|(_, strokes)| *strokes)
        .unwrap_or(&[])
}

#[rustfmt::skip]
const FONT: &[(u8, &[Stroke])] = &[
    (b'C', &[&[(4.0, 1.0), (3.1, 0.0), (1.0, 0.0), (0.0, 1.2), (0.0, 4.8), (1.0, 6.0), (3.1, 6.0), (4.0, 5.0)]]),
    (b'D', &[&[(0.0, 0.0), (0.0, 6.0), (2.4, 6.0), (4.0, 4.5), (4.0, 1.5), (2.4, 0.0), (0.0, 0.0)]]),
    (b'E', &[&[(4.0, 0.0), (0.0, 0.0), (0.0, 6.0), (4.0, 6.0)], &[(0.0, 3.0), (3.0, 3.0)]]),
    (b'H', &[&[(0.0, 0.0), (0.0, 6.0)], &[(4.0, 0.0), (4.0, 6.0)], &[(0.0, 3.0), (4.0, 3.0)]]),
    (b'J', &[&[(1.6, 0.0), (4.0, 0.0), (4.0, 4.8), (3.0, 6.0), (1.0, 6.0), (0.0, 4.6)]]),
    (b'K', &[&[(0.0, 0.0), (0.0, 6.0)], &[(4.0, 0.0), (0.0, 4.0)], &[(1.5, 2.5), (4.0, 6.0)]]),
    (b'M', &[&[(0.0, 6.0), (0.0, 0.0), (2.0, 3.6), (4.0, 0.0), (4.0, 6.0)]]),
    (b'P', &[&[(0.0, 6.0), (0.0, 0.0), (3.0, 0.0), (4.0, 0.8), (4.0, 2.4), (3.0, 3.2), (0.0, 3.2)]]),
    (b'T', &[&[(0.0, 0.0), (4.0, 0.0)], &[(2.0, 0.0), (2.0, 6.0)]]),
    (b'U', &[&[(0.0, 0.0), (0.0, 4.8), (1.0, 6.0), (3.0, 6.0), (4.0, 4.8), (4.0, 0.0)]]),
    (b'W', &[&[(0.0, 0.0), (1.0, 6.0), (2.0, 2.2), (3.0, 6.0), (4.0, 0.0)]]),
    (b'3', &[
        &[(0.0, 0.8), (1.0, 0.0), (3.0, 0.0), (4.0, 0.9), (4.0, 2.0), (3.0, 2.9), (1.6, 2.9)],
        &[(3.0, 2.9), (4.0, 3.8), (4.0, 5.1), (3.0, 6.0), (1.0, 6.0), (0.0, 5.2)],
    ]),
    (b'4', &[&[(3.0, 6.0), (3.0, 0.0), (0.0, 4.2), (4.0, 4.2)]]),
    (b'6', &[&[
        (3.6, 0.4), (2.6, 0.0), (1.0, 0.0), (0.0, 1.4), (0.0, 4.8), (1.0, 6.0),
        (3.0, 6.0), (4.0, 5.0), (4.0, 3.8), (3.0, 2.8), (1.0, 2.8), (0.0, 3.8),
    ]]),
    (b'9', &[&[
        (4.0, 2.2), (3.0, 3.2), (1.0, 3.2), (0.0, 2.2), (0.0, 1.0), (1.0, 0.0),
        (3.0, 0.0), (4.0, 1.2), (4.0, 4.6), (3.0, 6.0), (1.0, 6.0), (0.4, 5.4),
    ]]),
];

#[cfg(test)]
mod tests {
    #[test]
    fn every_character_of_the_alphabet_has_a_glyph() {
        for c in super::ALPHABET {
            assert!(!super::glyph(*c).is_empty(), "{}", *c as char);
        }
        assert_eq!(super::FONT.len(), super::ALPHABET.len());
    }
}
