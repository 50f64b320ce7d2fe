//! A queue run's figures, from what each shopper saw: fifo's order (Kendall's tau, the first
//! arrivals' wins), the draw's uniformity over arrival, the bots' shares and how surprising
//! their wins are, the ETA's error and the opening's lag.

use serde_json::{json, Value};

use crate::fairness;
use crate::outcome::Record;

/// A figure of every record that has it, sorted.
fn sorted(records: &[Record], f: impl Fn(&Record) -> Option<f64>) -> Vec<f64> {
    let mut v: Vec<f64> = records.iter().filter_map(f).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The bots' shares of the line, the draw and the wins, and how surprising their wins are
/// by chance (the binomial tail): against whom the bots compete, in a draw those in it (a
/// ticket after the start queues behind the draw, whoever holds it), in a line everyone.
struct Bots {
    queue_share: f64,
    draw_share: f64,
    win_share: f64,
    advantage_p: f64,
}

fn bot_figures(mode: &str, stock: u32, joined: &[&Record], winners: &[&Record]) -> Bots {
    let share = |part: usize, all: usize| {
        if all == 0 {
            0.0
        } else {
            part as f64 / all as f64
        }
    };
    let bot_wins = winners.iter().filter(|r| r.bot).count();
    let queue_share = share(joined.iter().filter(|r| r.bot).count(), joined.len());
    let drew: Vec<&&Record> = joined.iter().filter(|r| r.in_draw).collect();
    let draw_share = share(drew.iter().filter(|r| r.bot).count(), drew.len());
    let (q, n, k) = if mode == "random" && drew.len() >= stock as usize {
        let won: Vec<&&&Record> = drew.iter().filter(|r| r.won).collect();
        (draw_share, won.len(), won.iter().filter(|r| r.bot).count())
    } else {
        (queue_share, winners.len(), bot_wins)
    };
    Bots {
        queue_share,
        draw_share,
        win_share: share(bot_wins, winners.len()),
        advantage_p: fairness::binomial_upper_tail(n as u64, k as u64, q),
    }
}

/// random: the winners over the draw (its tickets in arrival order), in ten arrival bins,
/// against uniform: (chi-square, p), or nothing for a draw of fewer than ten.
fn draw_uniformity(drawn: &[&Record]) -> (Option<f64>, Option<f64>) {
    if drawn.len() < 10 {
        return (None, None);
    }
    let mut bins = [0u64; 10];
    for (rank, r) in drawn.iter().enumerate() {
        if r.won {
            bins[rank * 10 / drawn.len()] += 1;
        }
    }
    fairness::chi_square_uniform(&bins).map_or((None, None), |(c, p)| (Some(c), Some(p)))
}

/// The fairness figures of a queue run (fields of the crowd's last JSON line).
pub fn fairness(mode: &str, stock: u32, starts_ms: i64, records: &[Record]) -> Value {
    let joined: Vec<&Record> = records.iter().filter(|r| r.number.is_some()).collect();
    let winners: Vec<&Record> = records.iter().filter(|r| r.won).collect();
    let share = |part: usize, all: usize| {
        if all == 0 {
            0.0
        } else {
            part as f64 / all as f64
        }
    };
    let bots = bot_figures(mode, stock, &joined, &winners);
    let placed: Vec<&Record> = joined
        .iter()
        .copied()
        .filter(|r| r.position.is_some())
        .collect();
    let kendall_tau = (mode == "fifo")
        .then(|| {
            let xs: Vec<f64> = placed.iter().map(|r| r.index as f64).collect();
            let ys: Vec<f64> = placed
                .iter()
                .map(|r| r.position.unwrap_or(0) as f64)
                .collect();
            fairness::kendall_tau(&xs, &ys)
        })
        .flatten();
    // fifo: of the first `stock` arrivals in line, how many won.
    let first_arrivals_won = (mode == "fifo").then(|| {
        let mut by_arrival: Vec<&Record> = joined.clone();
        by_arrival.sort_by_key(|r| r.index);
        let first: Vec<&&Record> = by_arrival.iter().take(stock as usize).collect();
        share(first.iter().filter(|r| r.won).count(), first.len())
    });
    let mut drawn: Vec<&Record> = joined.iter().copied().filter(|r| r.in_draw).collect();
    drawn.sort_by_key(|r| r.index);
    let (chi2, uniform_p) = if mode == "random" {
        draw_uniformity(&drawn)
    } else {
        (None, None)
    };
    let errors = sorted(records, |r| {
        Some((r.admitted_ms? - r.predicted_ms?).abs() / 1000.0)
    });
    // How long after the start shoppers first saw their admission (the opening's lag).
    let lags = sorted(records, |r| {
        Some((r.admitted_ms? - starts_ms as f64) / 1000.0)
    });
    // How late tickets came after their shoppers were due (the crowd's own lag).
    let join_lags = sorted(records, |r| Some(r.join_lag_ms? / 1000.0));
    let round = |v: Option<f64>, d: i32| v.map(|x| (x * 10f64.powi(d)).round() / 10f64.powi(d));
    json!({
        "queue_mode": mode,
        "joined": joined.len(),
        "winners": winners.len(),
        "kendall_tau": round(kendall_tau, 4),
        "first_arrivals_win_share": round(first_arrivals_won, 4),
        "uniform_chi2": round(chi2, 3),
        "uniform_p": round(uniform_p, 4),
        "in_draw": drawn.len(),
        "joined_before_start": joined.iter().filter(|r| r.joined_before_start).count(),
        "bot_queue_share": round(Some(bots.queue_share), 4),
        "bot_win_share": round(Some(bots.win_share), 4),
        "bot_draw_share": round((mode == "random").then_some(bots.draw_share), 4),
        "bot_advantage_p": round(Some(bots.advantage_p), 4),
        "eta_samples": errors.len(),
        "eta_error_p50_s": round(fairness::percentile(&errors, 50.0), 2),
        "eta_error_p90_s": round(fairness::percentile(&errors, 90.0), 2),
        "join_lag_p50_s": round(fairness::percentile(&join_lags, 50.0), 2),
        "join_lag_p99_s": round(fairness::percentile(&join_lags, 99.0), 2),
        "admitted_after_start_p50_s": round(fairness::percentile(&lags, 50.0), 2),
        "admitted_after_start_p90_s": round(fairness::percentile(&lags, 90.0), 2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(index: usize, bot: bool, position: u64, won: bool) -> Record {
        Record {
            index,
            bot,
            number: Some(index as u64 + 1),
            position: Some(position),
            won,
            ..Record::default()
        }
    }

    #[test]
    fn a_perfect_fifo_line() {
        let records: Vec<Record> = (0..100)
            .map(|i| rec(i, i % 10 == 0, i as u64 + 1, i < 20))
            .collect();
        let f = fairness("fifo", 20, 0, &records);
        assert_eq!(f["kendall_tau"], 1.0);
        assert_eq!(f["first_arrivals_win_share"], 1.0);
        assert_eq!(f["bot_queue_share"], 0.1);
        assert_eq!(f["bot_win_share"], 0.1);
    }

    #[test]
    fn bots_that_win_too_often_are_surprising() {
        // 10% of the line, half the wins.
        assert!(fairness::binomial_upper_tail(100, 50, 0.1) < 1e-10);
        assert!(fairness::binomial_upper_tail(100, 10, 0.1) > 0.4);
        assert_eq!(fairness::binomial_upper_tail(100, 0, 0.1), 1.0);
    }

    #[test]
    fn a_draw_that_favours_early_arrivals_is_not_uniform() {
        let mut records: Vec<Record> = (0..1000)
            .map(|i| Record {
                in_draw: true,
                ..rec(i, false, 1, i < 100)
            })
            .collect();
        let f = fairness("random", 100, 0, &records);
        assert!(f["uniform_p"].as_f64().unwrap() < 1e-6);
        for (i, r) in records.iter_mut().enumerate() {
            r.won = i % 10 == 3;
        }
        let f = fairness("random", 100, 0, &records);
        assert!(f["uniform_p"].as_f64().unwrap() > 0.99);
    }
}
