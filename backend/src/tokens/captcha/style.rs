//! A deployment's own way of drawing its captchas, derived from its captcha key (issue 32).
//!
//! The drawing code is public, so anyone can draw labelled pictures and train a solver on
//! them. What is not public is this key: it shapes the deployment's own hand (every glyph's
//! points moved a little, the slant, the width, the stroke, how tightly glyphs crowd each
//! other, the baseline's wave), the same in every picture of the deployment (people see one
//! consistent hand) and unlike any other deployment's. A solver trained on the public
//! generator's pictures meets, live, a hand it has not seen; to train on this one, an
//! attacker must label live pictures (people's time) or learn every hand the key could give.
//! How much that buys against which solver is measured in docs/captcha.md.

use super::font::{self, Pt};

/// How far (grid units, of a 4 x 6 glyph) a deployment moves each point of its glyphs.
const HAND_SHIFT: f32 = 0.2;

#[derive(Clone, Debug, PartialEq)]
pub struct Style {
    /// Each character of the alphabet in this hand: its polylines.
    glyphs: Vec<(u8, Vec<Vec<Pt>>)>,
    /// The hand's slant (a shear) and width, around which each glyph varies.
    pub slant: f32,
    pub aspect: f32,
    /// Stroke width (px) of the glyphs.
    pub stroke: f32,
    /// Advance from one glyph to the next, in glyph widths with their stroke (below 1: they
    /// touch, overlap).
    pub spacing: f32,
    /// The baseline's wave amplitude (px).
    pub wave: f32,
}

impl Style {
    /// The hand of the public code, drawn without a key (tests, tools, and what an attacker
    /// draws who has only the repository).
    pub fn public() -> Style {
        Style {
            glyphs: font::ALPHABET
                .iter()
                .map(|&c| (c, font::glyph(c).iter().map(|s| s.to_vec()).collect()))
                .collect(),
            slant: 0.0,
            aspect: 1.0,
            stroke: 6.75,
            spacing: 1.08,
            wave: 8.0,
        }
    }

    /// This deployment's hand, from its captcha key.
    pub fn from_key(captcha_key: &[u8]) -> Style {
        let seed = crate::tokens::crypto::sign_hex(captcha_key, b"captcha-style");
        let mut state = u64::from_str_radix(&seed[..16], 16).unwrap_or(1) | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f32 / (1u64 << 53) as f32
        };
        let mut range = |lo: f32, hi: f32| lo + (hi - lo) * next();
        let glyphs = font::ALPHABET
            .iter()
            .map(|&c| {
                let strokes = font::glyph(c)
                    .iter()
                    .map(|s| {
                        s.iter()
                            .map(|(x, y)| {
                                let dx = range(-HAND_SHIFT, HAND_SHIFT);
                                let dy = range(-HAND_SHIFT, HAND_SHIFT);
                                ((x + dx).clamp(-0.3, 4.3), (y + dy).clamp(-0.3, 6.3))
                            })
                            .collect()
                    })
                    .collect();
                (c, strokes)
            })
            .collect();
        Style {
            glyphs,
            slant: range(-0.12, 0.12),
            aspect: range(0.9, 1.12),
            stroke: range(5.8, 7.6),
            spacing: range(1.0, 1.15),
            wave: range(4.0, 11.0),
        }
    }

    /// The polylines of `c` in this hand (empty for a character outside the alphabet).
    pub fn glyph(&self, c: u8) -> &[Vec<Pt>] {
        self.glyphs
            .iter()
            .find(|(k, _)| *k == c)
            .map_or(&[], |(_, s)| s.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gives_its_own_hand_and_always_the_same() {
        let a = Style::from_key(b"key one");
        assert_eq!(a, Style::from_key(b"key one"));
        let b = Style::from_key(b"key two");
        assert_ne!(a.glyph(b'K'), b.glyph(b'K'));
        assert_ne!(a.glyph(b'K'), Style::public().glyph(b'K'));
        for c in font::ALPHABET {
            assert_eq!(a.glyph(*c).len(), font::glyph(*c).len(), "{}", *c as char);
        }
        assert!((1.0..=1.15).contains(&a.spacing));
    }
}
