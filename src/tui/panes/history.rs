//! The history pane: the lab's journal, newest first and live (every
//! change to a node, who made it and from where; the `history` verb's
//! rows), narrowed by a filter line, with the whole record of a row on
//! Enter.
//!
//! The filter line is space-separated terms, all of which must hold:
//! `node=ID`, `patch=ID`, `rollout=N`, `op=OP`, `source=S` and
//! `operator=USER` match that field (`operator` and `patch` as a part of
//! it), and any other term is a fuzzy match over the whole row, as the
//! depot's search is.

use fuzzy_matcher::FuzzyMatcher;
use fuzzy_matcher::skim::SkimMatcherV2;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use crate::engine::journal::Change;
use crate::tui::app::App;
use crate::tui::panes::pane_block;
use crate::tui::state::{Mode, Pane};
use crate::tui::text::fit;

/// One term of the filter line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Field(String, String),
    Fuzzy(String),
}

fn terms(filter: &str) -> Vec<Term> {
    filter
        .split_whitespace()
        .map(|t| match t.split_once('=') {
            Some((k, v))
                if matches!(
                    k,
                    "node" | "patch" | "rollout" | "op" | "source" | "operator"
                ) =>
            {
                Term::Field(k.to_string(), v.to_ascii_lowercase())
            }
            _ => Term::Fuzzy(t.to_string()),
        })
        .collect()
}

/// The text a fuzzy term is matched against.
fn line_of(c: &Change) -> String {
    format!(
        "{} {} {} {} {} {} {}",
        c.time, c.node, c.patch, c.op, c.operator, c.source, c.message
    )
}

/// Indexes into `changes` of the rows the filter keeps, in their order
/// (newest first, as the journal gives them).
pub fn rows(changes: &[Change], filter: &str) -> Vec<usize> {
    let terms = terms(filter);
    let matcher = SkimMatcherV2::default();
    changes
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            terms.iter().all(|t| match t {
                Term::Field(k, v) => match k.as_str() {
                    "node" => c.node.eq_ignore_ascii_case(v),
                    "patch" => c.patch.to_ascii_lowercase().contains(v.as_str()),
                    "rollout" => c.rollout.is_some_and(|r| r.to_string() == *v),
                    "op" => c.op.eq_ignore_ascii_case(v),
                    "source" => c.source.eq_ignore_ascii_case(v),
                    _ => c.operator.to_ascii_lowercase().contains(v.as_str()),
                },
                Term::Fuzzy(q) => matcher.fuzzy_match(&line_of(c), q).is_some(),
            })
        })
        .map(|(i, _)| i)
        .collect()
}

/// The whole record of a change, one field a line, for the detail dialog.
pub fn record(c: &Change) -> Vec<String> {
    let mut lines = vec![
        format!("time      {}", c.time),
        format!("node      {}", c.node),
        format!("patch     {}", c.patch),
        format!("op        {}", c.op),
        format!("ok        {}", if c.ok { "yes" } else { "no" }),
        format!(
            "operator  {}",
            match &c.sudo_user {
                Some(s) => format!("{} (sudo from {s})", c.operator),
                None => c.operator.clone(),
            }
        ),
        format!(
            "source    {}{}",
            c.source,
            c.rollout
                .map(|r| format!(", rollout {r}"))
                .unwrap_or_default()
        ),
    ];
    if !c.command.is_empty() {
        lines.push(format!("command   {}", c.command));
    }
    lines.push(String::new());
    lines.extend(c.message.lines().map(str::to_string));
    lines
}

pub fn render(app: &mut App, frame: &mut Frame, area: Rect) {
    let focused = app.focus == Pane::History;
    let changes = &app.ops.snapshot.history;
    let shown = rows(changes, &app.ops.history_filter.text);
    let title = if app.ops.history_filter.text.is_empty() {
        format!(" History {} ", changes.len())
    } else {
        format!(" History {}/{} ", shown.len(), changes.len())
    };
    let block = pane_block(&app.theme, title, focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 2 {
        return;
    }
    let editing = app.mode == Mode::HistoryFilter && focused;
    let [head, list, filter] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    let width = inner.width as usize;
    let theme = &app.theme;
    let head_text = format!(
        "{:<16} {:<10} {:<10} {:<9} {:<3} BY",
        "TIME (UTC)", "NODE", "PATCH", "OP", "OK"
    );
    frame.render_widget(
        Paragraph::new(Line::styled(fit(&head_text, width), theme.header)),
        head,
    );
    let height = list.height as usize;
    if focused {
        app.page = height.saturating_sub(1).max(1);
    }
    app.ops.history_cursor.clamp(shown.len());
    app.ops.history_cursor.scroll(height, shown.len());
    let theme = &app.theme;
    let cursor = app.ops.history_cursor;
    let mut lines = Vec::new();
    if shown.is_empty() {
        let note = if changes.is_empty() {
            "no changes yet: every stage, install, rollback and rollout step lands here"
        } else {
            "no change matches the filter; x clears it"
        };
        lines.push(Line::styled(fit(note, width), theme.dim));
    }
    for (row, &i) in shown.iter().enumerate().skip(cursor.offset).take(height) {
        let c = &changes[i];
        // 2026-11-29T20:01:02Z → 11-29 20:01:02
        let time = c.time.get(5..19).unwrap_or(&c.time).replace('T', " ");
        let text = format!(
            "{:<16} {:<10} {:<10} {:<9} {:<3} {}",
            fit(&time, 16),
            fit(&c.node, 10),
            fit(&c.patch, 10),
            fit(&c.op, 9),
            if c.ok { "ok" } else { "NO" },
            c.operator
        );
        let style = if row == cursor.selected && focused {
            theme.selected
        } else if c.ok {
            Default::default()
        } else {
            theme.error
        };
        lines.push(Line::styled(fit(&text, width), style));
    }
    frame.render_widget(Paragraph::new(lines), list);
    let filter_line = if editing {
        Line::styled(
            fit(&format!("filter: {}_", app.ops.history_filter.text), width),
            theme.key,
        )
    } else if app.ops.history_filter.text.is_empty() {
        Line::styled(
            fit(
                "/ filter: node=ID patch=ID rollout=N op=OP operator=USER or any text",
                width,
            ),
            theme.dim,
        )
    } else {
        Line::styled(
            fit(&format!("filter: {}", app.ops.history_filter.text), width),
            theme.dim,
        )
    };
    frame.render_widget(Paragraph::new(filter_line), filter);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(node: &str, patch: &str, op: &str, operator: &str, rollout: Option<i64>) -> Change {
        Change {
            time: "2026-11-29T20:01:02Z".into(),
            operator: operator.into(),
            sudo_user: None,
            source: "cli".into(),
            rollout,
            node: node.into(),
            patch: patch.into(),
            op: op.into(),
            ok: true,
            message: format!("{op} {patch} on {node}"),
            command: String::new(),
        }
    }

    #[test]
    fn field_terms_and_fuzzy_terms_all_hold() {
        let changes = vec![
            change("edge-1_1", "KRN_1001", "install", "ann@ops1", Some(3)),
            change("edge-1_2", "KRN_1001", "rollback", "bob@ops2", None),
            change("gw-east-1", "GW_1021", "stage", "ann@ops1", None),
        ];
        assert_eq!(rows(&changes, ""), [0, 1, 2]);
        assert_eq!(rows(&changes, "node=edge-1_2"), [1]);
        assert_eq!(rows(&changes, "operator=ann"), [0, 2]);
        assert_eq!(rows(&changes, "rollout=3"), [0]);
        assert_eq!(rows(&changes, "patch=krn op=install"), [0]);
        assert_eq!(rows(&changes, "gwest"), [2]);
        assert_eq!(rows(&changes, "operator=ann krn"), [0]);
        assert!(rows(&changes, "node=nowhere").is_empty());
    }
}
