//! What came of one shopper, for the fairness figures: a queue run's (place, ETA, admission)
//! and a real opening's (bot or person, won or not).

/// What one shopper saw.
#[derive(Clone, Debug, Default)]
pub struct Record {
    /// Arrival rank (shoppers arrive in index order).
    pub index: usize,
    pub bot: bool,
    pub number: Option<u64>,
    pub position: Option<u64>,
    pub in_draw: bool,
    /// Its ticket was answered before the start (the server numbered it before the draw).
    pub joined_before_start: bool,
    /// How late its ticket came after the shopper was due to arrive (ms): the crowd's own
    /// lag when the machine that plays it is saturated.
    pub join_lag_ms: Option<f64>,
    /// When the first ETA said the shopper would be admitted (epoch ms).
    pub predicted_ms: Option<f64>,
    /// When a poll first said admitted (epoch ms).
    pub admitted_ms: Option<f64>,
    pub won: bool,
}
