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

/// p50 and p99 per time bucket as bars (p99 light, p50 dark), log-scaled milliseconds.
fn timeline(rows: &[(u32, usize, f64, f64)]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let (w, h) = (720.0, 220.0);
    let max = rows.iter().map(|r| r.3).fold(1.0, f64::max);
    let scale = |ms: f64| (ms.max(0.1) / 0.1).ln() / (max / 0.1).ln().max(1e-9) * (h - 30.0);
    let bw = (w - 40.0) / rows.len() as f64;
    let mut svg =
        format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img">"#);
    for (i, (t, n, p50, p99)) in rows.iter().enumerate() {
        let x = 40.0 + i as f64 * bw;
        let (h99, h50) = (scale(*p99), scale(*p50));
        let _ = write!(
            svg,
            r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h99:.1}" fill="#9bbcf0"><title>{t} ms: {n} answers, p50 {p50} ms, p99 {p99} ms</title></rect><rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h50:.1}" fill="#2157c4"/>"##,
            h - 20.0 - h99,
            (bw - 1.0).max(1.0),
            h - 20.0 - h50,
            (bw - 1.0).max(1.0),
        );
    }
    let _ = write!(
        svg,
        r#"<text x="0" y="12" font-size="11">{max} ms</text><text x="40" y="{}" font-size="11">0 s</text><text x="{}" y="{}" font-size="11">{:.1} s</text></svg>"#,
        h - 4.0,
        w - 40.0,
        h - 4.0,
        f64::from(rows.last().map_or(0, |r| r.0)) / 1000.0
    );
    svg
}

pub fn html(
    summary: &Value,
    funnel: &[(String, f64)],
    sorted_us: &[u32],
    over_time: &[(u32, usize, f64, f64)],
) -> String {
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
<h2>Latency over the run (per 250 ms: p99 light, p50 dark; log scale; hover for numbers)</h2>{time}
<h2>Summary</h2><table>{rows}</table></body></html>
"#,
        sale = summary["sale_id"],
        funnel = bars(funnel, ""),
        hist = bars(&hist, "req"),
        time = timeline(over_time),
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
