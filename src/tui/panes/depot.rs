//! The depot pane: the patches passing the filter (narrowed by the fuzzy
//! query), with mark, id, state, severity, categories and title, and a
//! detail line for the patch under the cursor.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::pane_block;
use crate::engine::fuzzy::match_positions;
use crate::engine::manifest::Severity;
use crate::engine::patch::Patch;
use crate::tui::app::App;
use crate::tui::state::{Mode, Pane};
use crate::tui::text::{fit, highlighted};

const ID_WIDTH: usize = 10;
/// The categories column: 14 characters at 80 columns, a third of the room
/// beyond the fixed columns on wider screens.
fn category_width(width: usize) -> usize {
    (width.saturating_sub(40) / 3).clamp(14, 40)
}

/// Width of the fleet column: `applied/nodes` with the product.
const FLEET_WIDTH: usize = 5;

pub fn render(app: &mut App, frame: &mut Frame, area: Rect) {
    let theme = &app.theme;
    let focused = app.focus == Pane::Depot;
    let title = format!(
        " Depot {}/{}{} ",
        app.rows.len(),
        app.depot.patches.len(),
        if app.marks.is_empty() {
            String::new()
        } else {
            format!(", {} marked", app.marks.len())
        }
    );
    let block = pane_block(theme, title, focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 3 {
        return;
    }
    let [header, list, detail_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(2),
    ])
    .areas(inner);

    let width = inner.width as usize;
    let cat_width = category_width(width);
    let title_width =
        width.saturating_sub(4 + ID_WIDTH + 1 + 2 + 2 + FLEET_WIDTH + 1 + cat_width + 1);
    let head = format!(
        "    {} ~ ! {:>FLEET_WIDTH$} {} {}",
        fit("ID", ID_WIDTH),
        "FLEET",
        fit("CATEGORIES", cat_width),
        fit("TITLE", title_width)
    );
    frame.render_widget(Paragraph::new(Line::styled(head, theme.header)), header);

    let height = list.height as usize;
    app.page = height.saturating_sub(1).max(1);
    app.depot_cursor.scroll(height, app.rows.len());
    let query = if app.query.trim().is_empty() || app.searching {
        None
    } else {
        Some(app.query.as_str())
    };
    let mut lines = Vec::with_capacity(height);
    for (row, &index) in app
        .rows
        .iter()
        .enumerate()
        .skip(app.depot_cursor.offset)
        .take(height)
    {
        let patch = &app.depot.patches[index];
        let selected = row == app.depot_cursor.selected && (focused || app.mode == Mode::Normal);
        lines.push(row_line(
            app,
            index,
            patch,
            query,
            selected,
            (cat_width, title_width),
        ));
    }
    if app.rows.is_empty() {
        let why = if app.searching {
            "searching…"
        } else {
            "no patches match; x clears the filter and search"
        };
        lines.push(Line::styled(format!("  {why}"), theme.dim));
    }
    frame.render_widget(Paragraph::new(lines), list);

    let detail_lines = match app.current_patch() {
        Some(p) => detail(app, p),
        None => vec![],
    };
    frame.render_widget(Paragraph::new(detail_lines), detail_area);
}

fn row_line(
    app: &App,
    index: usize,
    patch: &Patch,
    query: Option<&str>,
    selected: bool,
    (cat_width, title_width): (usize, usize),
) -> Line<'static> {
    let theme = &app.theme;
    let marked = app.marks.contains(&patch.id);
    let base = if selected {
        theme.selected
    } else {
        Style::default()
    };
    // What follows the id; see `Theme::compact_selection`.
    let rest = if theme.compact_selection {
        Style::default()
    } else {
        base
    };
    let (id_hits, title_hits) = match query {
        Some(q) => split_positions(&match_positions(app.lines.line(index), q), patch),
        None => (Vec::new(), Vec::new()),
    };
    // `X`: a signature that proves nothing, or none where the lab
    // requires one (ASCII, for the serial profile); `~`: superseded.
    let untrusted = matches!(
        app.trust.get(&patch.id),
        Some(crate::engine::trust::Verdict::Untrusted { .. })
    ) || (!app.trust.verdicts.is_empty() && !app.trust.usable(&patch.id));
    let state = if untrusted {
        "X"
    } else if patch.superseded_by.is_empty() {
        " "
    } else {
        "~"
    };
    let sev_style = match patch.manifest.severity {
        Severity::Critical => theme.critical,
        Severity::High => theme.high,
        _ => Style::default(),
    };
    let mut spans = vec![Span::styled(
        format!("{} ", theme.mark(marked)),
        if marked {
            base.patch(theme.marked)
        } else {
            base
        },
    )];
    spans.extend(highlighted(
        &patch.id,
        ID_WIDTH,
        &id_hits,
        base,
        theme.matched,
    ));
    spans.push(Span::styled(format!(" {state} "), rest));
    spans.push(Span::styled(
        severity_letter(patch.manifest.severity).to_string(),
        rest.patch(sev_style),
    ));
    // Applied on N of the M nodes that carry the product (blank: nowhere).
    let fleet = match app.ops.coverage.get(&patch.id) {
        Some((n, m)) => format!("{n}/{m}"),
        None => String::new(),
    };
    spans.push(Span::styled(format!(" {fleet:>FLEET_WIDTH$}"), rest));
    spans.push(Span::styled(
        format!(" {} ", fit(&patch.categories.join(","), cat_width)),
        rest,
    ));
    spans.extend(highlighted(
        &patch.manifest.title,
        title_width,
        &title_hits,
        rest,
        theme.matched,
    ));
    Line::from(spans)
}

/// Splits positions in the search line into positions in the id and in the
/// title (the line is `ID TITLE …`).
fn split_positions(positions: &[usize], patch: &Patch) -> (Vec<usize>, Vec<usize>) {
    let id_len = patch.id.chars().count();
    let title_len = patch.manifest.title.chars().count();
    let id = positions.iter().copied().filter(|&p| p < id_len).collect();
    let title = positions
        .iter()
        .filter(|&&p| p > id_len && p <= id_len + title_len)
        .map(|&p| p - id_len - 1)
        .collect();
    (id, title)
}

pub fn severity_letter(s: Severity) -> char {
    match s {
        Severity::Critical => 'C',
        Severity::High => 'H',
        Severity::Medium => 'M',
        Severity::Low => 'L',
    }
}

fn detail(app: &App, p: &Patch) -> Vec<Line<'static>> {
    let m = &p.manifest;
    let product = match &m.fileset {
        Some(fs) => format!("{}.{fs}", m.product),
        None => m.product.clone(),
    };
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(",")
        }
    };
    let restart = if m.hot {
        "hot".to_string()
    } else {
        format!("restart {}", m.restart)
    };
    // Everything here came from a manifest: shown, never obeyed. Values
    // sit in columns, so moving to the next patch rewrites only the values
    // that differ instead of a line shifted sideways: on a 9600-baud line
    // the detail lines were most of what a row move cost.
    let shown = crate::tui::text::shown;
    vec![
        Line::styled(
            shown(&format!(
                "{:<8} {product:<19} {:<7} {:<8} {} {restart}{}",
                p.id,
                m.version,
                m.severity.to_string(),
                m.released,
                if m.kernel { " kernel" } else { "" }
            )),
            // On the line, emphasis costs an SGR pair on every move.
            if app.theme.compact_selection {
                Style::default()
            } else {
                app.theme.header
            },
        ),
        Line::styled(
            shown(&format!(
                "supersedes {:<8}  superseded by {:<8}  requires {:<8}{}",
                list(&m.supersedes),
                list(&p.superseded_by),
                list(&m.requires),
                app.trust
                    .get(&p.id)
                    .map(|v| format!("  {}", v.short()))
                    .unwrap_or_default()
            )),
            if app.trust.usable(&p.id) {
                app.theme.dim
            } else {
                app.theme.error
            },
        ),
    ]
}
