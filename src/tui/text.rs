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

/// A comma-separated list (`A,B,C`) in exactly `width` characters: whole
/// when it fits, else as many whole items as fit and `+N` for the rest, so
/// a cut never looks like another id (`APP_1051,A`).
pub fn fit_list(s: &str, width: usize) -> String {
    let items: Vec<&str> = s.split(',').collect();
    if s.chars().count() <= width || items.len() < 2 {
        return fit(s, width);
    }
    for k in (1..items.len()).rev() {
        let shown = format!("{}+{}", items[..k].join(","), items.len() - k);
        if shown.chars().count() <= width {
            return fit(&shown, width);
        }
    }
    let more = format!("+{}", items.len() - 1);
    let room = width.saturating_sub(more.chars().count());
    fit(&format!("{}{more}", fit(items[0], room)), width)
}

/// `s` broken into rows of at most `width` characters, between words
/// where it can (a word longer than a row is cut); continuation rows keep
/// the line's indent. An empty line is one empty row.
pub fn wrap(s: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let indent: String = s.chars().take_while(|c| *c == ' ').collect();
    let indent = if indent.chars().count() * 2 >= width {
        String::new()
    } else {
        indent
    };
    let lead = s.chars().take_while(|c| *c == ' ').count().min(width - 1);
    let mut rows = Vec::new();
    let mut row = " ".repeat(lead);
    let mut len = lead;
    for word in s.trim_start_matches(' ').split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let room = width.saturating_sub(len);
            let sep = usize::from(len > 0 && !row.trim().is_empty());
            if word.len() + sep <= room {
                if sep == 1 {
                    row.push(' ');
                }
                row.extend(word.iter());
                len += word.len() + sep;
                break;
            }
            if len > indent.chars().count() {
                rows.push(std::mem::take(&mut row));
                row.push_str(&indent);
                len = indent.chars().count();
                continue;
            }
            // A word longer than a whole row: cut it.
            let take = width.saturating_sub(len).max(1).min(word.len());
            row.extend(word.drain(..take));
            len += take;
            if word.is_empty() {
                break;
            }
            rows.push(std::mem::take(&mut row));
            row.push_str(&indent);
            len = indent.chars().count();
        }
    }
    rows.push(row);
    rows
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
    fn a_cut_list_says_how_many_it_leaves_out() {
        assert_eq!(fit_list("APP_1051,APP_1052", 10), "APP_1051+1");
        assert_eq!(fit_list("A,B,C", 10), "A,B,C     ");
        assert_eq!(fit_list("AB,CD,EF,GH", 8), "AB,CD+2 ");
        assert_eq!(fit_list("LONGNAME_1,X", 6), "LONG+1");
        assert_eq!(fit_list("SOLO_LONG", 4), "SOLO");
    }

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

#[cfg(test)]
mod wrap_tests {
    use super::wrap;

    #[test]
    fn wrap_keeps_every_word_within_the_width() {
        let text = "  edge-1_1: KRN_1034, KRN_1011 not staged; replicate first with patchdeck replicate KRN_1034 KRN_1011 --nodes edge-1_1,edge-1_2";
        for width in [10, 20, 33, 74] {
            let rows = wrap(text, width);
            assert!(rows.iter().all(|r| r.chars().count() <= width), "{rows:?}");
            let joined: Vec<&str> = rows.iter().flat_map(|r| r.split_whitespace()).collect();
            let words: Vec<&str> = text.split_whitespace().collect();
            if width >= 33 {
                assert_eq!(joined, words, "{rows:?}");
            }
        }
        assert_eq!(wrap("", 10), vec![String::new()]);
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("  ab cd", 5), vec!["  ab", "  cd"]);
    }
}
