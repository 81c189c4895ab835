//! `giftd-bench chart`: an SVG of throughput and p99 latency against concurrency, one line per
//! backend (closed-loop redemptions spread over all cards) and, where measured, pgbench doing
//! the same SQL work. It reads the `--json` documents of earlier runs and draws; it measures
//! nothing.

use std::fmt::Write as _;

use crate::report::Report;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 420.0;
const PANEL_WIDTH: f64 = 380.0;
const PANEL_HEIGHT: f64 = 280.0;
const TOP: f64 = 70.0;

/// A measurement: concurrency, throughput per second, p99 in milliseconds.
pub type Point = (u32, f64, f64);

/// A panel: its title, its left edge, and which value of a point it plots.
type Panel = (&'static str, f64, fn(&Point) -> f64);

/// One line of the chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub colour: &'static str,
    pub dashed: bool,
    pub points: Vec<Point>,
}

const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// The series found in the reports: giftd's closed-loop spread runs per backend, and pgbench.
pub fn series(reports: &[Report]) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for report in reports {
        for backend in &report.backends {
            let mut points: Vec<Point> = backend
                .runs
                .iter()
                .filter(|r| r.scenario == "spread" && r.mode == "closed")
                .filter_map(|r| Some((r.concurrency?, r.throughput_per_second, r.latency_ms.p99)))
                .collect();
            points.sort_by_key(|p| p.0);
            if !points.is_empty() {
                let colour = COLOURS[out.len() % COLOURS.len()];
                out.push(Series {
                    name: format!("giftd on {}", backend.backend),
                    colour,
                    dashed: false,
                    points,
                });
            }
            let mut points: Vec<Point> = backend
                .pgbench
                .iter()
                .map(|p| (p.concurrency, p.tps, p.latency_ms.p99))
                .collect();
            points.sort_by_key(|p| p.0);
            if !points.is_empty() {
                let colour = COLOURS[out.len() % COLOURS.len()];
                out.push(Series {
                    name: format!("pgbench, same SQL ({})", backend.backend),
                    colour,
                    dashed: true,
                    points,
                });
            }
        }
    }
    out
}

/// A "nice" upper bound for an axis: 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten, at
/// least `value`.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    for step in [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if step * power >= value {
            return step * power;
        }
    }
    10.0 * power
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Draws the two panels. The x axis is log2 of the concurrency; y axes are linear from zero.
pub fn svg(series: &[Series], title: &str) -> String {
    let mut concurrencies: Vec<u32> = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
    concurrencies.sort_unstable();
    concurrencies.dedup();
    let x_min = concurrencies.first().copied().unwrap_or(1).max(1) as f64;
    let x_max = concurrencies.last().copied().unwrap_or(64).max(2) as f64;
    let x_span = (x_max.log2() - x_min.log2()).max(1.0);

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    let panels: [Panel; 2] = [
        ("redemptions per second", 70.0, |p| p.1),
        ("p99 latency (ms)", 70.0 + PANEL_WIDTH + 110.0, |p| p.2),
    ];
    for (label, left, value) in panels {
        let y_max = nice_ceiling(
            series
                .iter()
                .flat_map(|s| s.points.iter().map(value))
                .fold(0.0, f64::max),
        );
        let x_of = |c: u32| left + (f64::from(c).log2() - x_min.log2()) / x_span * PANEL_WIDTH;
        let y_of = |v: f64| TOP + PANEL_HEIGHT - v / y_max * PANEL_HEIGHT;
        let bottom = TOP + PANEL_HEIGHT;
        let _ = writeln!(
            out,
            r##"<rect x="{left}" y="{TOP}" width="{PANEL_WIDTH}" height="{PANEL_HEIGHT}" fill="none" stroke="#444"/>"##
        );
        for i in 0..=5 {
            let v = y_max * f64::from(i) / 5.0;
            let y = y_of(v);
            let _ = writeln!(
                out,
                r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                left + PANEL_WIDTH,
                left - 6.0,
                y + 4.0,
                if y_max >= 100.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            );
        }
        for &c in &concurrencies {
            let x = x_of(c);
            let _ = writeln!(
                out,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{c}</text>"##,
                bottom + 16.0
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">concurrency (clients in flight)</text>"#,
            left + PANEL_WIDTH / 2.0,
            bottom + 34.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">{}</text>"#,
            left + PANEL_WIDTH / 2.0,
            TOP - 8.0,
            escape(label)
        );
        for s in series {
            let path: Vec<String> = s
                .points
                .iter()
                .map(|p| format!("{:.1},{:.1}", x_of(p.0), y_of(value(p))))
                .collect();
            let dash = if s.dashed {
                r#" stroke-dasharray="6,4""#
            } else {
                ""
            };
            let _ = writeln!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                path.join(" "),
                s.colour
            );
            for p in &s.points {
                let _ = writeln!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                    x_of(p.0),
                    y_of(value(p)),
                    s.colour
                );
            }
        }
    }
    // The legend, under the panels.
    let legend_y = HEIGHT - 16.0;
    let mut x = 70.0;
    for s in series {
        let dash = if s.dashed {
            r#" stroke-dasharray="6,4""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r#"<line x1="{x}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{legend_y}">{}</text>"#,
            legend_y - 4.0,
            x + 28.0,
            legend_y - 4.0,
            s.colour,
            x + 34.0,
            escape(&s.name)
        );
        x += 40.0 + 7.0 * s.name.len() as f64;
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceiling_rounds_up_to_a_round_number() {
        assert_eq!(nice_ceiling(3.2), 4.0);
        assert_eq!(nice_ceiling(2_597.0), 3_000.0);
        assert_eq!(nice_ceiling(12_000.0), 15_000.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
    }

    #[test]
    fn svg_draws_a_line_and_a_point_per_measurement() {
        let series = vec![Series {
            name: "giftd on sqlite".into(),
            colour: COLOURS[0],
            dashed: false,
            points: vec![(1, 900.0, 2.0), (4, 3000.0, 3.0), (16, 9000.0, 6.0)],
        }];
        let svg = svg(&series, "t & t");
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 6);
        assert!(svg.contains("t &amp; t"));
    }
}
