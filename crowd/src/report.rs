//! The HTML report: the summary, the funnel as bars (requests per layer) and a latency
//! histogram (log-scale buckets), as inline SVG: one self-contained file.

use std::fmt::Write;

use serde_json::Value;

/// Bucket upper bounds in milliseconds: 0.125 ms doubling up to 16 s.
fn bounds() -> Vec<f64> {
    (0..18).map(|i| 0.125 * f64::powi(2.0, i)).collect()
}

pub fn histogram(sorted_us: &[u32]) -> Vec<(f64, u64)> {
    let b = bounds();
    let mut counts = vec![0u64; b.len()];
    for us in sorted_us {
        let ms = f64::from(*us) / 1000.0;
        let i = b.iter().position(|edge| ms <= *edge).unwrap_or(b.len() - 1);
        counts[i] += 1;
    }
    b.into_iter().zip(counts).collect()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn bars(rows: &[(String, f64)], unit: &str) -> String {
    let max = rows.iter().map(|(_, v)| *v).fold(1.0, f64::max);
    let (w, row_h) = (720.0, 26.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{}" role="img">"#,
        row_h * rows.len() as f64 + 10.0
    );
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = i as f64 * row_h + 4.0;
        // log scale keeps a 1,000-order bar visible next to 200,000 requests
        let len = if *v > 0.0 {
            (v.ln_1p() / max.ln_1p()) * (w - 330.0)
        } else {
            0.0
        };
        let _ = write!(
            svg,
            r##"<text x="0" y="{}" font-size="13">{}</text><rect x="230" y="{y}" width="{len:.1}" height="{}" fill="#3b7dd8"/><text x="{:.1}" y="{}" font-size="12">{v} {unit}</text>"##,
            y + 15.0,
            esc(label),
            row_h - 8.0,
            236.0 + len,
            y + 15.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

pub fn html(summary: &Value, funnel: &[(String, f64)], sorted_us: &[u32]) -> String {
    let hist: Vec<(String, f64)> = histogram(sorted_us)
        .into_iter()
        .filter(|(_, c)| *c > 0)
        .map(|(edge, c)| (format!("≤ {edge} ms"), c as f64))
        .collect();
    let mut rows = String::new();
    if let Value::Object(m) = summary {
        for (k, v) in m {
            let _ = write!(
                rows,
                "<tr><th>{}</th><td>{}</td></tr>",
                esc(k),
                esc(&v.to_string())
            );
        }
    }
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>crowd report: sale {sale}</title>
<style>body{{font-family:sans-serif;max-width:800px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}th,td{{text-align:left;padding:2px 12px;border-bottom:1px solid #ddd}}</style></head>
<body><h1>Crowd against sale {sale}</h1>
<h2>Funnel (requests per layer, log scale)</h2>{funnel}
<h2>Latency of every request (log-scale buckets, count per bucket)</h2>{hist}
<h2>Summary</h2><table>{rows}</table></body></html>
"#,
        sale = summary["sale_id"],
        funnel = bars(funnel, ""),
        hist = bars(&hist, "req"),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_latency_lands_in_one_bucket() {
        let v = vec![50, 100, 900, 3_000, 40_000_000];
        let h = super::histogram(&v);
        assert_eq!(h.iter().map(|(_, c)| c).sum::<u64>(), 5);
        assert_eq!(h[0].1, 2, "0.05 and 0.1 ms are in the first bucket");
    }
}
