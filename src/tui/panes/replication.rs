//! The replication pane: per patch, `done/total` with a gauge and per data
//! center counts; under it, every node's status for the selected patch
//! (pending, copying, verified, failed with the reason).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::pane_block;
use crate::engine::replicate::Status;
use crate::tui::app::App;
use crate::tui::state::Pane;
use crate::tui::text::fit;

/// `[####------]` in ASCII, so it draws on any terminal.
pub fn gauge(done: usize, total: usize, width: usize) -> String {
    let filled = (done * width).checked_div(total).unwrap_or(0);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

pub fn render(app: &mut App, frame: &mut Frame, area: Rect) {
    let focused = app.focus == Pane::Replication;
    let progress = &app.ops.snapshot.replication;
    let theme = &app.theme;
    let block = pane_block(
        theme,
        format!(" Replication: {} patch(es) ", progress.len()),
        focused,
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 3 {
        return;
    }
    let list_height = (progress.len() as u16 + 1).clamp(2, inner.height / 2);
    let [list, detail] =
        Layout::vertical([Constraint::Length(list_height), Constraint::Min(1)]).areas(inner);
    let width = inner.width as usize;

    let rows = list.height as usize;
    if focused {
        app.page = rows.saturating_sub(1).max(1);
    }
    app.ops.repl_cursor.scroll(rows, progress.len());
    let mut lines = Vec::new();
    if progress.is_empty() {
        lines.push(Line::styled(
            "nothing replicated yet: mark patches in the depot (1), then R",
            theme.dim,
        ));
    }
    for (i, p) in progress
        .iter()
        .enumerate()
        .skip(app.ops.repl_cursor.offset)
        .take(rows)
    {
        let selected = i == app.ops.repl_cursor.selected;
        let dcs: Vec<String> = p
            .dcs
            .iter()
            .map(|d| format!("{} {}/{}", d.dc, d.done, d.total))
            .collect();
        let failed = if p.failed > 0 {
            format!(" {} failed", p.failed)
        } else {
            String::new()
        };
        let text = format!(
            "{:<10} {} {:>7}  {}{failed}",
            p.patch,
            gauge(p.done, p.total, 12),
            p.ratio(),
            dcs.join("  ")
        );
        let style = if selected && focused {
            theme.selected
        } else if p.failed > 0 {
            theme.error
        } else {
            Default::default()
        };
        lines.push(Line::styled(fit(&text, width), style));
    }
    frame.render_widget(Paragraph::new(lines), list);

    let Some(p) = progress.get(app.ops.repl_cursor.selected) else {
        return;
    };
    let mut lines = vec![Line::styled(
        crate::tui::text::shown(&format!(
            "{} on each node (R retries what is missing):",
            p.patch
        )),
        theme.header,
    )];
    // Failed and in-flight first: they are what an operator acts on.
    let mut nodes: Vec<_> = p.nodes.iter().collect();
    nodes.sort_by_key(|n| match n.status {
        Status::Failed => 0,
        Status::Copying => 1,
        Status::Pending => 2,
        Status::Verified => 3,
    });
    let columns = if width >= 100 {
        3
    } else if width >= 60 {
        2
    } else {
        1
    };
    let cell = width / columns;
    let mut spans = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let style = match n.status {
            Status::Failed => theme.error,
            Status::Verified => theme.ok,
            _ => Default::default(),
        };
        let reason = if n.reason.is_empty() {
            String::new()
        } else {
            format!(" {}", n.reason)
        };
        spans.push(Span::styled(
            fit(
                &format!("{:<12} {:<8}{reason}", n.node, n.status.as_str()),
                cell,
            ),
            style,
        ));
        if (i + 1) % columns == 0 || n.status == Status::Failed {
            lines.push(Line::from(std::mem::take(&mut spans)));
        }
    }
    if !spans.is_empty() {
        lines.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(lines), detail);
}
