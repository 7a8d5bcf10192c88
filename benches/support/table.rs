//! What the fleet and ssh benchmarks share: medians, and the rows of their
//! Markdown tables (a measure's median, its time per node, and its ratio to
//! the baseline of its group).

use std::time::Duration;

/// The median of `v` (the upper one of an even count); `v` is not empty.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Milliseconds with `digits` decimals.
pub fn ms(seconds: f64, digits: usize) -> String {
    format!("{:.digits$} ms", seconds * 1000.0)
}

/// Prints the table's heading.
pub fn head() {
    println!("| measure | median | per node | ratio |");
    println!("|---|---|---|---|");
}

/// One row: `label`, the median, the time per node of `nodes` (with
/// `digits` decimals of a millisecond), and `ratio` when given.
pub fn row(label: &str, median: Duration, nodes: usize, digits: usize, ratio: Option<f64>) {
    println!(
        "| {label} | {} | {} | {} |",
        secs(median),
        ms(median.as_secs_f64() / nodes as f64, digits),
        ratio.map(|r| format!("{r:.2}")).unwrap_or_default()
    );
}

/// `a` as a multiple of `b`.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}
