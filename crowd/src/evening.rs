//! An evening: many sales at once (`--sales N`, or `--sale-ids` for existing ones), the crowd
//! spread over them by a skewed popularity (Zipf: the sale of rank k draws shoppers in
//! proportion to 1 / k^s; s = 1 gives a few hot sales and a long tail).

use std::time::Duration;

use hyper::Method;
use serde_json::json;

use crate::args::Args;
use crate::http::Http;
use seckill::buy::sales::Sale;

/// Creates `a.sales` sales of `a.stock` units in one call (or reads `a.sale_ids`); returns
/// them as MariaDB holds them, and the start the crowd plays from.
pub async fn sales(
    a: &Args,
    admin_http: &Http,
    admin: &str,
    db: &mysql_async::Pool,
) -> Result<(Vec<Sale>, i64), String> {
    if !a.sale_ids.is_empty() {
        let sales = seckill::buy::sale_rows::load_many(db, &a.sale_ids)
            .await
            .map_err(|e| format!("database: {e}"))?;
        if sales.len() != a.sale_ids.len() {
            return Err(format!(
                "--sale-ids: {} of {} sales exist",
                sales.len(),
                a.sale_ids.len()
            ));
        }
        let mut ordered = Vec::with_capacity(sales.len());
        for id in &a.sale_ids {
            ordered.extend(sales.iter().find(|s| s.id == *id).cloned());
        }
        let starts = ordered.iter().map(|s| s.starts_ms).max().unwrap_or(0);
        return Ok((ordered, starts));
    }
    // Creating thousands of sales and letting every edge learn them takes a moment.
    let lead = a
        .start_in
        .max(Duration::from_millis(3000 + a.sales as u64 / 5));
    let starts = seckill::clock::now_ms() + lead.as_millis() as i64;
    let body: Vec<_> = (0..a.sales)
        .map(|i| {
            json!({"title": format!("Evening sale {}", i + 1), "price_cents": 100,
                   "stock": a.stock, "per_user_limit": a.per_user_limit,
                   "starts_at": starts, "ends_at": starts + 3_600_000, "queue": "none"})
        })
        .collect();
    let auth = format!("Bearer {admin}");
    let (status, created) = admin_http
        .send(
            Method::POST,
            "/admin/sales",
            &[("authorization", auth.as_str())],
            Some((
                "application/json",
                serde_json::Value::from(body).to_string(),
            )),
        )
        .await;
    if status != 201 {
        return Err(format!(
            "creating {} sales: {status} {}",
            a.sales,
            String::from_utf8_lossy(&created)
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&created).map_err(|e| format!("creating the sales: {e}"))?;
    let ids: Vec<u64> = v["sales"]
        .as_array()
        .ok_or("creating the sales: no list in the answer")?
        .iter()
        .filter_map(|s| s["id"].as_u64())
        .collect();
    let mut sales = seckill::buy::sale_rows::load_many(db, &ids)
        .await
        .map_err(|e| format!("database: {e}"))?;
    sales.sort_by_key(|s| s.id);
    if !a.quiet {
        eprintln!(
            "crowd: {} sales of {} units, {} shoppers (zipf {}), starting in {} ms",
            sales.len(),
            a.stock,
            a.users,
            a.zipf,
            lead.as_millis()
        );
    }
    Ok((sales, starts))
}

/// Which sale each shopper came for: a deterministic draw from the Zipf distribution over
/// the sales' ranks (rank 1 the most popular).
pub struct Popularity {
    /// Cumulative weights, normalised to 1.
    cumulative: Vec<f64>,
}

impl Popularity {
    pub fn new(sales: usize, s: f64) -> Popularity {
        let weights: Vec<f64> = (1..=sales).map(|k| 1.0 / (k as f64).powf(s)).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let cumulative = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        Popularity { cumulative }
    }

    /// The sale (index) of shopper `i`.
    pub fn sale_of(&self, i: usize) -> usize {
        if self.cumulative.len() <= 1 {
            return 0;
        }
        // A fixed, well-mixed point in [0, 1) per shopper (splitmix64 of its index).
        let mut z = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let u = (z >> 11) as f64 / (1u64 << 53) as f64;
        self.cumulative
            .partition_point(|c| *c <= u)
            .min(self.cumulative.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::Popularity;

    #[test]
    fn a_few_sales_draw_most_shoppers_and_every_rank_is_possible() {
        let p = Popularity::new(100, 1.0);
        let mut counts = [0usize; 100];
        for i in 0..100_000 {
            counts[p.sale_of(i)] += 1;
        }
        // Rank 1 draws about 1/H(100) ~ 19% of shoppers; rank 100 about 0.19%.
        assert!((17_000..21_000).contains(&counts[0]), "{}", counts[0]);
        assert!(counts[0] > 5 * counts[9]);
        assert!(counts[99] > 0);
        let flat = Popularity::new(10, 0.0);
        let mut c = [0usize; 10];
        for i in 0..10_000 {
            c[flat.sale_of(i)] += 1;
        }
        assert!(c.iter().all(|n| (800..1200).contains(n)), "{c:?}");
    }
}
