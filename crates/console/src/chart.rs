//! A wallet's balance over time as inline SVG, drawn on the server: one point per
//! mutation (its `balance_after`), after an opening point at zero when the wallet was
//! made, spaced evenly so that mutations made in one second stay apart.

use crate::view;
use maud::{Markup, html};
use prepaid_ledger::{Timestamp, Unit};

const WIDTH: i64 = 640;
const HEIGHT: i64 = 180;
const PAD: i64 = 12;

/// One point of the chart: when, and the balance then.
pub struct Point {
    pub at: Timestamp,
    pub balance: i64,
}

/// The chart of `points`, oldest first, labelled for readers that cannot see it.
pub fn balance_chart(points: &[Point], unit: &Unit, label: &str) -> Markup {
    let low = points.iter().map(|p| p.balance).min().unwrap_or(0).min(0);
    let high = points.iter().map(|p| p.balance).max().unwrap_or(0).max(0);
    let span = i128::from(high) - i128::from(low);
    let inner_w = i128::from(WIDTH - 2 * PAD);
    let inner_h = i128::from(HEIGHT - 2 * PAD);
    let steps = i128::try_from(points.len().saturating_sub(1).max(1)).unwrap_or(1);
    let place = |i: usize, balance: i64| -> (i64, i64) {
        let x = i128::from(PAD) + inner_w * i128::try_from(i).unwrap_or(0) / steps;
        let y = match span {
            0 => i128::from(HEIGHT - PAD),
            _ => i128::from(PAD) + inner_h * (i128::from(high) - i128::from(balance)) / span,
        };
        (i64::try_from(x).unwrap_or(0), i64::try_from(y).unwrap_or(0))
    };
    let placed: Vec<(i64, i64)> = points
        .iter()
        .enumerate()
        .map(|(i, p)| place(i, p.balance))
        .collect();
    let line: String = placed
        .iter()
        .map(|(x, y)| format!("{x},{y}"))
        .collect::<Vec<_>>()
        .join(" ");
    let (_, zero_y) = place(0, 0);
    html! {
        figure class="chart" {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(label) {
                line class="zero" x1=(PAD) x2=(WIDTH - PAD) y1=(zero_y) y2=(zero_y) {}
                polyline class="balance" points=(line) {}
                @for (point, (x, y)) in points.iter().zip(&placed) {
                    circle class="point" cx=(x) cy=(y) r="4" {
                        title {
                            (view::amount(point.balance, unit)) " at "
                            (prepaid_edge::time::format(point.at))
                        }
                    }
                }
            }
            figcaption {
                (label) ": " (points.len()) " points, from "
                (view::amount(low, unit)) " to " (view::amount(high, unit)) "."
            }
        }
    }
}
