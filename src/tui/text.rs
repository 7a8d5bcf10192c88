//! Small text helpers for fixed-width cells.

use ratatui::style::Style;
use ratatui::text::Span;

/// `s` as the console shows it: control characters made visible (`^[`),
/// never passed to the terminal. Every string from a patch, fleet, node or
/// log goes through this (or [`fit`], which calls it) before it is drawn.
pub fn shown(s: &str) -> String {
    crate::engine::text::neutralise(s).into_owned()
}

/// `s` cut or padded to exactly `width` characters, controls made visible.
pub fn fit(s: &str, width: usize) -> String {
    let s = crate::engine::text::neutralise(s);
    let mut out: String = s.chars().take(width).collect();
    let n = out.chars().count();
    out.extend(std::iter::repeat_n(' ', width - n));
    out
}

/// Spans for `s` in a cell of `width`, characters at `positions` (relative
/// to `s`) drawn in `hit`.
pub fn highlighted(
    s: &str,
    width: usize,
    positions: &[usize],
    base: Style,
    hit: Style,
) -> Vec<Span<'static>> {
    let cell = fit(s, width);
    if positions.is_empty() {
        return vec![Span::styled(cell, base)];
    }
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut run = String::new();
    let mut run_hit = false;
    for (i, c) in cell.chars().enumerate() {
        let is_hit = positions.binary_search(&i).is_ok();
        if is_hit != run_hit && !run.is_empty() {
            spans.push(Span::styled(
                std::mem::take(&mut run),
                if run_hit { base.patch(hit) } else { base },
            ));
        }
        run_hit = is_hit;
        run.push(c);
    }
    if !run.is_empty() {
        spans.push(Span::styled(
            run,
            if run_hit { base.patch(hit) } else { base },
        ));
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_pads_and_cuts() {
        assert_eq!(fit("abc", 5), "abc  ");
        assert_eq!(fit("abcdef", 3), "abc");
        assert_eq!(fit("äöü", 2), "äö");
    }

    #[test]
    fn highlight_splits_runs() {
        let spans = highlighted(
            "abcd",
            4,
            &[1, 2],
            Style::default(),
            Style::default().bold(),
        );
        let texts: Vec<&str> = spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(texts, ["a", "bc", "d"]);
    }
}
