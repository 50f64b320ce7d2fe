//! Small statistics helpers for fairness checks: Kendall's tau-b,
//! chi-square goodness of fit against a uniform distribution, and
//! nearest-rank percentiles. Standard library only.

use std::cmp::Ordering;

/// Kendall's tau-b between two paired samples, in O(n log n) (Knight's algorithm).
///
/// Returns `None` when the slices differ in length, hold fewer than 2 pairs,
/// or when either side consists entirely of ties. NaN values are ordered by
/// `f64::total_cmp`.
pub fn kendall_tau(xs: &[f64], ys: &[f64]) -> Option<f64> {
    let n = xs.len();
    if n != ys.len() || n < 2 {
        return None;
    }
    let mut pairs: Vec<(f64, f64)> = xs.iter().copied().zip(ys.iter().copied()).collect();
    pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));

    let total_pairs = tie_pairs(n as u64);
    let mut x_ties = 0u64;
    let mut joint_ties = 0u64;
    let mut x_run = 1u64;
    let mut joint_run = 1u64;
    for w in pairs.windows(2) {
        if w[0].0.total_cmp(&w[1].0) == Ordering::Equal {
            x_run += 1;
            if w[0].1.total_cmp(&w[1].1) == Ordering::Equal {
                joint_run += 1;
            } else {
                joint_ties += tie_pairs(joint_run);
                joint_run = 1;
            }
        } else {
            x_ties += tie_pairs(x_run);
            joint_ties += tie_pairs(joint_run);
            x_run = 1;
            joint_run = 1;
        }
    }
    x_ties += tie_pairs(x_run);
    joint_ties += tie_pairs(joint_run);

    let mut ys_sorted: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    let mut buf = vec![0.0; n];
    let swaps = merge_count(&mut ys_sorted, &mut buf);

    let mut y_ties = 0u64;
    let mut y_run = 1u64;
    for w in ys_sorted.windows(2) {
        if w[0].total_cmp(&w[1]) == Ordering::Equal {
            y_run += 1;
        } else {
            y_ties += tie_pairs(y_run);
            y_run = 1;
        }
    }
    y_ties += tie_pairs(y_run);

    let not_x_tied = total_pairs - x_ties;
    let not_y_tied = total_pairs - y_ties;
    if not_x_tied == 0 || not_y_tied == 0 {
        return None;
    }
    // concordant - discordant = n0 - n1 - n2 + n3 - 2 * swaps
    let numerator = total_pairs as i128 - x_ties as i128 - y_ties as i128 + joint_ties as i128
        - 2 * swaps as i128;
    let denominator = (not_x_tied as f64).sqrt() * (not_y_tied as f64).sqrt();
    Some(numerator as f64 / denominator)
}

/// Number of pairs among `t` tied items: t(t-1)/2.
fn tie_pairs(t: u64) -> u64 {
    t * (t.saturating_sub(1)) / 2
}

/// Stable bottom-up merge sort of `v`, returning the number of inversions
/// (pairs strictly out of order). `buf` must have the same length as `v`.
fn merge_count(v: &mut [f64], buf: &mut [f64]) -> u64 {
    let n = v.len();
    let mut swaps = 0u64;
    let mut width = 1;
    while width < n {
        let mut start = 0;
        while start < n {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (mut i, mut j, mut k) = (start, mid, start);
            while i < mid && j < end {
                if v[j].total_cmp(&v[i]) == Ordering::Less {
                    buf[k] = v[j];
                    swaps += (mid - i) as u64;
                    j += 1;
                } else {
                    buf[k] = v[i];
                    i += 1;
                }
                k += 1;
            }
            buf[k..k + (mid - i)].copy_from_slice(&v[i..mid]);
            k += mid - i;
            buf[k..end].copy_from_slice(&v[j..end]);
            start = end;
        }
        v.copy_from_slice(buf);
        width *= 2;
    }
    swaps
}

/// Chi-square goodness-of-fit of `counts` against equal expected counts.
///
/// Returns `(statistic, p_value)` with `k - 1` degrees of freedom, or `None`
/// when there are fewer than 2 categories or the total count is zero.
pub fn chi_square_uniform(counts: &[u64]) -> Option<(f64, f64)> {
    let k = counts.len();
    let total: u64 = counts.iter().sum();
    if k < 2 || total == 0 {
        return None;
    }
    let expected = total as f64 / k as f64;
    let stat: f64 = counts
        .iter()
        .map(|&c| {
            let d = c as f64 - expected;
            d * d / expected
        })
        .sum();
    Some((stat, chi_square_sf(stat, (k - 1) as f64)))
}

/// Upper tail probability P(X > x) of a chi-square distribution with `dof`
/// degrees of freedom, i.e. the regularized upper incomplete gamma
/// Q(dof/2, x/2). Returns NaN for NaN input or non-positive `dof`.
pub fn chi_square_sf(x: f64, dof: f64) -> f64 {
    if x.is_nan() || dof.is_nan() || dof <= 0.0 {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    if x.is_infinite() {
        return 0.0;
    }
    gamma_q(dof / 2.0, x / 2.0)
}

/// Regularized upper incomplete gamma Q(a, x) for a > 0, x > 0.
fn gamma_q(a: f64, x: f64) -> f64 {
    const EPS: f64 = 1e-15;
    const MAX_ITER: usize = 10_000;
    let log_prefix = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        // Series for P(a, x); Q = 1 - P.
        let mut term = 1.0 / a;
        let mut sum = term;
        let mut ap = a;
        for _ in 0..MAX_ITER {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * EPS {
                break;
            }
        }
        (1.0 - sum * log_prefix.exp()).clamp(0.0, 1.0)
    } else {
        // Continued fraction for Q(a, x), modified Lentz.
        const TINY: f64 = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..MAX_ITER {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < TINY {
                d = TINY;
            }
            c = b + an / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < EPS {
                break;
            }
        }
        (log_prefix.exp() * h).clamp(0.0, 1.0)
    }
}

/// Natural log of the gamma function for x > 0 (Lanczos, g = 7, n = 9).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Gamma(x) Gamma(1 - x) = pi / sin(pi x).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEF[0];
    for (i, &c) in COEF.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// Nearest-rank percentile of an ascending sorted slice, `p` in 0..=100.
///
/// Returns the element at rank ceil(p/100 * n) (rank at least 1), or `None`
/// when the slice is empty or `p` is outside 0..=100 or NaN.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=100.0).contains(&p) {
        return None;
    }
    let n = sorted.len();
    // Multiply before dividing so whole-number products stay exact (7% of 100 is 7).
    let rank = (p * n as f64 / 100.0).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// P(X >= k) for X ~ Binomial(n, q): how surprising k or more bot wins would be by chance.
pub fn binomial_upper_tail(n: u64, k: u64, q: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if q <= 0.0 {
        return 0.0;
    }
    if q >= 1.0 {
        return 1.0;
    }
    let ln_pmf = |i: u64| ln_choose(n, i) + i as f64 * q.ln() + (n - i) as f64 * (1.0 - q).ln();
    (k..=n).map(|i| ln_pmf(i).exp()).sum::<f64>().min(1.0)
}

fn ln_choose(n: u64, k: u64) -> f64 {
    (1..=k).map(|i| ((n - k + i) as f64 / i as f64).ln()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiny xorshift64 generator for reproducible test data.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, m: u64) -> f64 {
            (self.next() % m) as f64
        }
    }

    /// O(n^2) reference tau-b.
    fn brute_tau_b(xs: &[f64], ys: &[f64]) -> Option<f64> {
        let (mut conc, mut disc, mut x_only, mut y_only) = (0i64, 0i64, 0i64, 0i64);
        for i in 0..xs.len() {
            for j in (i + 1)..xs.len() {
                let dx = xs[i].total_cmp(&xs[j]);
                let dy = ys[i].total_cmp(&ys[j]);
                match (dx, dy) {
                    (Ordering::Equal, Ordering::Equal) => {}
                    (Ordering::Equal, _) => x_only += 1,
                    (_, Ordering::Equal) => y_only += 1,
                    _ if dx == dy => conc += 1,
                    _ => disc += 1,
                }
            }
        }
        let a = (conc + disc + y_only) as f64;
        let b = (conc + disc + x_only) as f64;
        if a == 0.0 || b == 0.0 {
            return None;
        }
        Some((conc - disc) as f64 / (a * b).sqrt())
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(f64::MIN_POSITIVE)
    }

    #[test]
    fn tau_identical_and_reversed() {
        let xs: Vec<f64> = (0..50).map(f64::from).collect();
        let rev: Vec<f64> = xs.iter().rev().copied().collect();
        assert!((kendall_tau(&xs, &xs).unwrap() - 1.0).abs() < 1e-12);
        assert!((kendall_tau(&xs, &rev).unwrap() + 1.0).abs() < 1e-12);
    }

    #[test]
    fn tau_degenerate_cases() {
        assert_eq!(kendall_tau(&[], &[]), None);
        assert_eq!(kendall_tau(&[1.0], &[2.0]), None);
        assert_eq!(kendall_tau(&[1.0, 2.0], &[1.0]), None);
        assert_eq!(kendall_tau(&[3.0, 3.0, 3.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(kendall_tau(&[1.0, 2.0, 3.0], &[5.0, 5.0, 5.0]), None);
    }

    #[test]
    fn tau_matches_brute_force_with_ties() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for n in (2..=300).step_by(7) {
            for levels in [2u64, 5, 20, 1000] {
                let xs: Vec<f64> = (0..n).map(|_| rng.below(levels)).collect();
                let ys: Vec<f64> = (0..n).map(|_| rng.below(levels)).collect();
                let fast = kendall_tau(&xs, &ys);
                let slow = brute_tau_b(&xs, &ys);
                match (fast, slow) {
                    (Some(f), Some(s)) => assert!((f - s).abs() < 1e-12, "n={n}: {f} vs {s}"),
                    (f, s) => assert_eq!(f, s, "n={n}"),
                }
            }
        }
    }

    #[test]
    fn tau_large_input() {
        let mut rng = XorShift(12345);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| rng.below(1000)).collect();
        let ys: Vec<f64> = (0..n).map(|_| rng.below(1000)).collect();
        let tau = kendall_tau(&xs, &ys).unwrap();
        assert!(tau.abs() < 0.01, "independent data gave tau {tau}");
        assert!((kendall_tau(&xs, &xs).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn sf_known_values() {
        assert!((chi_square_sf(3.841_46, 1.0) - 0.05).abs() < 1e-6);
        assert!((chi_square_sf(16.919, 9.0) - 0.05).abs() < 1e-5);
        assert!(close(chi_square_sf(3.841_458_820_694_124, 1.0), 0.05, 1e-9));
        assert!(close(
            chi_square_sf(16.918_977_604_620_448, 9.0),
            0.05,
            1e-9
        ));
        assert_eq!(chi_square_sf(0.0, 1.0), 1.0);
        assert_eq!(chi_square_sf(0.0, 7.0), 1.0);
        assert!(close(chi_square_sf(2.0, 2.0), (-1.0f64).exp(), 1e-12));
        assert!(chi_square_sf(1.0, 0.0).is_nan());
    }

    #[test]
    fn sf_closed_forms() {
        // Even dof 2m: Q(m, y) = exp(-y) * sum_{k<m} y^k / k!, with y = x / 2.
        // The x values cover both the series and continued-fraction branches.
        for m in [1u32, 2, 5, 25] {
            for &x in &[
                0.01f64, 0.5, 1.0, 3.0, 5.9, 6.1, 10.0, 30.0, 50.0, 200.0, 1000.0,
            ] {
                let y = x / 2.0;
                let mut term = 1.0;
                let mut sum = 1.0;
                for k in 1..m {
                    term *= y / f64::from(k);
                    sum += term;
                }
                let expected = (-y).exp() * sum;
                let got = chi_square_sf(x, f64::from(2 * m));
                assert!(
                    close(got, expected, 1e-9),
                    "dof {}, x={x}: {got} vs {expected}",
                    2 * m
                );
            }
        }
    }

    #[test]
    fn uniform_counts() {
        let (stat, p) = chi_square_uniform(&[100, 100, 100, 100]).unwrap();
        assert_eq!(stat, 0.0);
        assert_eq!(p, 1.0);
        let (stat, p) = chi_square_uniform(&[1000, 10, 10, 10, 10, 10]).unwrap();
        assert!(stat > 100.0);
        assert!(p < 1e-6, "p = {p}");
        assert_eq!(chi_square_uniform(&[5]), None);
        assert_eq!(chi_square_uniform(&[0, 0, 0]), None);
    }

    #[test]
    fn percentile_nearest_rank() {
        let v = [15.0, 20.0, 35.0, 40.0, 50.0];
        assert_eq!(percentile(&v, 0.0), Some(15.0));
        assert_eq!(percentile(&v, 5.0), Some(15.0));
        assert_eq!(percentile(&v, 30.0), Some(20.0));
        assert_eq!(percentile(&v, 40.0), Some(20.0));
        assert_eq!(percentile(&v, 50.0), Some(35.0));
        assert_eq!(percentile(&v, 100.0), Some(50.0));
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&ten, 70.0), Some(7.0));
        assert_eq!(percentile(&ten, 90.0), Some(9.0));
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 7.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&v, 101.0), None);
        assert_eq!(percentile(&v, f64::NAN), None);
    }
}
