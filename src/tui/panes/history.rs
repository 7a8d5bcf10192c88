//! The history pane: the lab's journal, newest first and live (every
//! change to a node, who made it and from where; the `history` verb's
//! rows), narrowed by a filter line (see [`crate::engine::history`]), with
//! the whole record of a row on Enter.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use crate::engine::history::rows;
use crate::tui::app::App;
use crate::tui::panes::pane_block;
use crate::tui::state::{Mode, Pane};
use crate::tui::text::{fit, fit_list};

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
        "{:<16} {:<10} {:<10} {:<11} {:<3} BY",
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
            "{:<16} {:<10} {:<10} {:<11} {:<3} {}",
            fit(&time, 16),
            fit(&c.node, 10),
            fit_list(&c.patch, 10),
            fit(&c.op, 11),
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
