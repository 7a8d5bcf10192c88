//! The category/filter pane: the filter expression (edited in place, with
//! the parser's error shown under the column it points at), the categories
//! with description and patch counts, the lab's saved filters, and the
//! depot's broken files.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::pane_block;
use crate::tui::app::App;
use crate::tui::state::{FilterItem, Mode, Pane};
use crate::tui::text::fit;

pub fn render(app: &mut App, frame: &mut Frame, area: Rect) {
    let theme = &app.theme;
    let focused = app.focus == Pane::Filter;
    let block = pane_block(theme, " Categories & filters ".to_string(), focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 4 {
        return;
    }
    let broken_rows = if app.depot.broken.is_empty() {
        0
    } else {
        (app.depot.broken.len() + 1).min(4) as u16
    };
    let error_rows = error_lines(app, inner.width as usize).len().max(1) as u16;
    let [editor, list, broken] = Layout::vertical([
        Constraint::Length(1 + error_rows.min(inner.height.saturating_sub(3))),
        Constraint::Min(1),
        Constraint::Length(broken_rows),
    ])
    .areas(inner);
    render_editor(app, frame, editor);

    let width = inner.width as usize;
    let height = list.height as usize;
    if focused {
        app.page = height.saturating_sub(1).max(1);
    }
    app.filter_cursor.scroll(height, app.filter_items.len());
    let theme = &app.theme;
    let mut lines = Vec::new();
    for (row, item) in app
        .filter_items
        .iter()
        .enumerate()
        .skip(app.filter_cursor.offset)
        .take(height)
    {
        let selected = focused && row == app.filter_cursor.selected && app.mode != Mode::EditFilter;
        let active = item.expr() == app.filter_text;
        let base = if selected {
            theme.selected
        } else {
            Style::default()
        };
        let mark = if active { "* " } else { "  " };
        let text = match item {
            FilterItem::All => format!(
                "{mark}{} {:>5}",
                fit("(all patches)", 20),
                app.depot.patches.len()
            ),
            FilterItem::Category {
                tag,
                description,
                count,
            } => {
                format!("{mark}{} {count:>5}  {description}", fit(tag, 20))
            }
            FilterItem::Saved { name, expr } => format!("{mark}saved: {name}  {expr}"),
        };
        lines.push(Line::styled(fit(&text, width), base));
    }
    frame.render_widget(Paragraph::new(lines), list);

    if broken_rows > 0 {
        let mut lines = vec![Line::styled(
            format!("{} broken file(s):", app.depot.broken.len()),
            theme.error,
        )];
        for b in app.depot.broken.iter().take(broken_rows as usize - 1) {
            lines.push(Line::styled(fit(&format!("! {b}"), width), theme.error));
        }
        frame.render_widget(Paragraph::new(lines), broken);
    }
}

fn render_editor(app: &App, frame: &mut Frame, area: Rect) {
    let theme = &app.theme;
    let editing = app.mode == Mode::EditFilter;
    let prompt = "Filter: ";
    let (text, hint) = if editing {
        (app.editor.text.as_str(), "")
    } else if app.filter_text.is_empty() {
        ("", "(none; e to edit)")
    } else {
        (app.filter_text.as_str(), "")
    };
    let mut first = vec![
        Span::styled(prompt, theme.header),
        Span::raw(text.to_string()),
    ];
    if !hint.is_empty() {
        first.push(Span::styled(hint, theme.dim));
    }
    let mut lines = vec![Line::from(first)];
    match (&app.editor.error, editing) {
        (Some(_), true) => lines.extend(
            error_lines(app, area.width as usize)
                .into_iter()
                .map(|l| Line::styled(l, theme.error)),
        ),
        (None, true) => lines.push(Line::styled(
            "Enter apply, Esc cancel; several filters: space between",
            theme.dim,
        )),
        _ => {}
    }
    frame.render_widget(Paragraph::new(lines), area);
    if editing {
        let x = area.x + (prompt.len() + app.editor.cursor) as u16;
        if x < area.right() {
            frame.set_cursor_position((x, area.y));
        }
    }
}

/// The filter's error under the column it points at (`^ message`), the
/// message wrapped so none of it is cut; empty without an error.
fn error_lines(app: &App, width: usize) -> Vec<String> {
    let Some(err) = app
        .editor
        .error
        .as_ref()
        .filter(|_| app.mode == Mode::EditFilter)
    else {
        return Vec::new();
    };
    let at = ("Filter: ".len() + err.column.saturating_sub(1)).min(width.saturating_sub(20));
    let message = crate::tui::text::shown(&err.message);
    let mut rows = crate::tui::text::wrap(&message, width.saturating_sub(at + 2).max(10));
    if let Some(first) = rows.first_mut() {
        *first = format!("{}^ {first}", " ".repeat(at));
    }
    for row in rows.iter_mut().skip(1) {
        *row = format!("{}  {row}", " ".repeat(at));
    }
    rows
}
