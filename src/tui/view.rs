//! The whole screen: title bar, the panes that fit, the status line, and
//! overlays (help, resolved selection). At 80 columns one pane is shown at
//! a time; from [`SIDE_BY_SIDE`] columns on, the filter pane sits beside the
//! depot pane.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use crate::tui::app::App;
use crate::tui::keymap::Action;
use crate::tui::panes;
use crate::tui::state::{Effect, ListCursor, Mode, Pane};
use crate::tui::text::shown;

pub const MIN_WIDTH: u16 = 40;
pub const MIN_HEIGHT: u16 = 10;
pub const SIDE_BY_SIDE: u16 = 120;

pub fn render(app: &mut App, frame: &mut Frame) {
    let area = frame.area();
    frame.render_widget(Block::default().style(app.theme.base), area);
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "Terminal {}x{} is too small; patchdeck needs {MIN_WIDTH}x{MIN_HEIGHT}. q quits.",
            area.width, area.height
        );
        frame.render_widget(
            Paragraph::new(text).wrap(ratatui::widgets::Wrap { trim: true }),
            area,
        );
        return;
    }
    let [title, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    render_title(app, frame, title);
    if area.width >= SIDE_BY_SIDE {
        // Wide: the depot (or filters) on the left, operations on the right;
        // tall enough, both operations panes at once.
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(body);
        if app.focus == Pane::Filter {
            panes::filter::render(app, frame, left);
        } else {
            panes::depot::render(app, frame, left);
        }
        if body.height >= 30 {
            let [top, bottom] =
                Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)])
                    .areas(right);
            panes::groups::render(app, frame, top);
            panes::replication::render(app, frame, bottom);
        } else if app.focus == Pane::Replication {
            panes::replication::render(app, frame, right);
        } else if app.focus == Pane::History {
            panes::history::render(app, frame, right);
        } else {
            panes::groups::render(app, frame, right);
        }
    } else {
        // One pane alone; see `Theme::plain_lone_frame`.
        let focus_border = app.theme.focus_border;
        if app.theme.plain_lone_frame {
            app.theme.focus_border = app.theme.border;
        }
        match app.focus {
            Pane::Depot => panes::depot::render(app, frame, body),
            Pane::Filter => panes::filter::render(app, frame, body),
            Pane::Replication => panes::replication::render(app, frame, body),
            Pane::Groups => panes::groups::render(app, frame, body),
            Pane::History => panes::history::render(app, frame, body),
        }
        app.theme.focus_border = focus_border;
    }
    render_status(app, frame, status);
    match app.mode {
        Mode::Help => render_help(app, frame, body),
        Mode::Selection => render_selection(app, frame, body),
        Mode::Dialog => render_dialog(app, frame, body),
        _ => {}
    }
}

fn render_dialog(app: &App, frame: &mut Frame, area: Rect) {
    let Some(d) = &app.ops.dialog else { return };
    let room = area.height.saturating_sub(4) as usize;
    // Wrapped here, to the overlay's inner width, so a long reason is read
    // whole and the prompt below it is never pushed off the screen.
    let inner = (area.width.saturating_sub(4).min(76) as usize)
        .saturating_sub(2)
        .max(1);
    let rows: Vec<String> = d
        .lines
        .iter()
        .flat_map(|l| crate::tui::text::wrap(l, inner))
        .collect();
    if let crate::tui::state::Confirm::Pick(choices) = &d.confirm {
        return render_pick(app, frame, area, d, rows, choices, room);
    }
    let scroll = d
        .scroll
        .min(rows.len().saturating_sub(room.saturating_sub(1)));
    let mut lines: Vec<Line<'static>> = rows
        .into_iter()
        .skip(scroll)
        .take(room.saturating_sub(1))
        .map(Line::raw)
        .collect();
    match &d.confirm {
        crate::tui::state::Confirm::Typed { .. } => lines.push(Line::from(vec![
            Span::styled("> ", app.theme.key),
            Span::raw(d.typed.clone()),
            Span::styled("_", app.theme.key),
        ])),
        crate::tui::state::Confirm::Close => lines.push(Line::styled(
            "Enter or Esc closes; arrows scroll",
            app.theme.dim,
        )),
        crate::tui::state::Confirm::Input(_) => lines.push(Line::from(vec![
            Span::styled("> ", app.theme.key),
            Span::raw(d.typed.clone()),
            Span::styled("_", app.theme.key),
        ])),
        crate::tui::state::Confirm::Keys(_) | crate::tui::state::Confirm::Pick(_) => {}
    }
    overlay(app, frame, area, d.title.clone(), lines);
}

/// A pick list: the dialog's lines, then as many choices as fit around the
/// chosen one (marked `>` and highlighted, so it reads without colour),
/// then how to answer.
fn render_pick(
    app: &App,
    frame: &mut Frame,
    area: Rect,
    d: &crate::tui::state::Dialog,
    header: Vec<String>,
    choices: &[(String, Effect)],
    room: usize,
) {
    let mut lines: Vec<Line<'static>> = header.into_iter().map(Line::raw).collect();
    let fit = room.saturating_sub(lines.len() + 1).max(1);
    let mut cursor = ListCursor {
        selected: d.pick.min(choices.len().saturating_sub(1)),
        offset: 0,
    };
    cursor.scroll(fit, choices.len());
    for (i, (label, _)) in choices.iter().enumerate().skip(cursor.offset).take(fit) {
        lines.push(if i == cursor.selected {
            Line::styled(format!("> {label}"), app.theme.selected)
        } else {
            Line::raw(format!("  {label}"))
        });
    }
    lines.push(Line::styled(
        format!(
            "{}/{}  arrows choose, Enter picks, Esc cancels",
            cursor.selected + 1,
            choices.len()
        ),
        app.theme.dim,
    ));
    overlay(app, frame, area, d.title.clone(), lines);
}

fn render_title(app: &App, frame: &mut Frame, area: Rect) {
    let broken = if app.depot.broken.is_empty() {
        String::new()
    } else {
        format!(" | {} broken", app.depot.broken.len())
    };
    let filter = if app.filter_text.is_empty() {
        String::new()
    } else {
        format!(" | filter {}", app.filter_text)
    };
    let text = format!(
        " patchdeck | lab {} | {} patches{broken}{filter}",
        app.lab_name,
        app.depot.patches.len()
    );
    frame.render_widget(
        Paragraph::new(crate::tui::text::fit(&text, area.width as usize)).style(app.theme.title),
        area,
    );
}

fn render_status(app: &App, frame: &mut Frame, area: Rect) {
    let theme = &app.theme;
    let line = match (&app.mode, &app.status) {
        (Mode::Command, _) => Line::from(vec![
            Span::styled(":", theme.key),
            Span::raw(app.ops.command.text.clone()),
            Span::styled("_", theme.key),
            Span::styled(
                "  a patchdeck verb, e.g. list --nodes edge-1_1; Enter runs, Esc cancels",
                theme.dim,
            ),
        ]),
        (Mode::Search, _) => {
            let count = if app.searching {
                "...".to_string()
            } else {
                format!("{} match(es)", app.rows.len())
            };
            Line::from(vec![
                Span::styled("/", theme.key),
                Span::raw(shown(&app.query)),
                Span::styled("_", theme.key),
                Span::styled(format!("  {count}  Enter keep  Esc clear"), theme.dim),
            ])
        }
        (_, Some((message, true))) => Line::styled(shown(message), theme.error),
        (_, Some((message, false))) => Line::styled(shown(message), theme.ok),
        _ => {
            let mut spans = Vec::new();
            // What the depot's signatures say, first: "depot unsigned",
            // "3 untrusted" (docs/trust.md).
            if let Some(summary) = app.trust.summary() {
                spans.push(Span::styled(summary, theme.error));
                spans.push(Span::raw("  "));
            }
            let hints: &[(&[Action], &str)] = match app.focus {
                Pane::Depot => &[
                    (&[Action::Help], "help"),
                    (&[Action::Search], "search"),
                    (&[Action::Mark], "mark"),
                    (&[Action::Resolve], "resolve"),
                    (&[Action::FocusFilter], "filters"),
                    (&[Action::Quit], "quit"),
                ],
                Pane::Filter => &[
                    (&[Action::Help], "help"),
                    (&[Action::Apply], "use"),
                    (&[Action::EditFilter], "edit"),
                    (&[Action::ClearFilter], "clear"),
                    (&[Action::FocusDepot], "depot"),
                    (&[Action::Quit], "quit"),
                ],
                Pane::Replication => &[
                    (&[Action::Help], "help"),
                    (&[Action::Down, Action::Up], "patch"),
                    (&[Action::Replicate], "retry"),
                    (&[Action::Command], "command"),
                    (&[Action::FocusGroups], "groups"),
                    (&[Action::Quit], "quit"),
                ],
                Pane::History => &[
                    (&[Action::Help], "help"),
                    (&[Action::Search], "filter"),
                    (&[Action::Apply], "record"),
                    (&[Action::ClearFilter], "clear"),
                    (&[Action::FocusDepot], "depot"),
                    (&[Action::Quit], "quit"),
                ],
                Pane::Groups => &[
                    (&[Action::Help], "help"),
                    (&[Action::RolloutStart], "roll out"),
                    (&[Action::Pause], "pause"),
                    (&[Action::Resume], "resume"),
                    (&[Action::Abort], "abort"),
                    (&[Action::RollbackGroup], "roll back"),
                ],
            };
            let scope = app.focus.scope();
            for (actions, what) in hints {
                // Hints come from the bindings in force, so a rebound key
                // shows as it is typed; an action left without keys is not
                // hinted at all.
                let keys: Vec<&str> = actions
                    .iter()
                    .filter_map(|a| app.keymap.key_of(*a, scope))
                    .collect();
                if keys.is_empty() {
                    continue;
                }
                spans.push(Span::styled(keys.join("/"), theme.key));
                spans.push(Span::raw(format!(" {what}  ")));
            }
            if !app.query.is_empty() {
                spans.push(Span::styled(format!("search: {}", app.query), theme.dim));
            }
            Line::from(spans)
        }
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// A box centred in `area`, at most `width` x `height`.
fn centred(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    cell
}

fn overlay(app: &App, frame: &mut Frame, area: Rect, title: String, lines: Vec<Line<'static>>) {
    let width = area.width.saturating_sub(4).min(76);
    // Wrapped lines take more rows; count them so nothing is cut off.
    let inner = width.saturating_sub(2).max(1) as usize;
    let rows: usize = lines.iter().map(|l| l.width().max(1).div_ceil(inner)).sum();
    let height = (rows as u16 + 2).min(area.height);
    let rect = centred(area, width, height);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_set(app.theme.border_set())
        .border_style(app.theme.focus_border)
        .title(title);
    frame.render_widget(Clear, rect);
    let wrap = ratatui::widgets::Wrap { trim: false };
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .style(app.theme.base)
            .wrap(wrap),
        rect,
    );
}

fn render_help(app: &App, frame: &mut Frame, area: Rect) {
    let theme = &app.theme;
    let rows = app.keymap.help(app.focus.scope());
    let cell = |keys: &str, what: &str| {
        // 1 + 16 + 19 characters, two a line with 2 between: 74, the inner
        // width of the overlay on an 80-column screen.
        vec![
            Span::styled(format!(" {:<16}", keys), theme.key),
            Span::raw(crate::tui::text::fit(what, 19)),
        ]
    };
    let mut lines: Vec<Line<'static>> = Vec::new();
    let mut last = None;
    let mut entries: Vec<Vec<Span<'static>>> = Vec::new();
    let flush = |title: Option<&str>,
                 entries: &mut Vec<Vec<Span<'static>>>,
                 lines: &mut Vec<Line<'static>>| {
        // Two entries a line so the whole help fits 80x24.
        for pair in entries.chunks(2) {
            let mut spans = pair[0].clone();
            if let Some(second) = pair.get(1) {
                spans.push(Span::raw("  "));
                spans.extend(second.iter().cloned());
            }
            lines.push(Line::from(spans));
        }
        entries.clear();
        if let Some(t) = title {
            lines.push(Line::styled(t.to_string(), theme.header));
        }
    };
    for (scope, keys, what) in rows {
        if last != Some(scope) {
            flush(Some(scope.title()), &mut entries, &mut lines);
            last = Some(scope);
        }
        entries.push(cell(&keys, what));
    }
    flush(None, &mut entries, &mut lines);
    if app.focus == Pane::Depot {
        lines.push(Line::styled(
            "Columns: [x] marked, ~ superseded by a newer patch in the depot,",
            theme.dim,
        ));
        lines.push(Line::styled(
            "! severity: C critical, H high, M medium, L low; FLEET applied on N of M",
            theme.dim,
        ));
    }
    lines.push(Line::styled("Esc, q or ? closes this help", theme.dim));
    overlay(app, frame, area, " Keys ".to_string(), lines);
}

fn render_selection(app: &App, frame: &mut Frame, area: Rect) {
    let Some(sel) = &app.selection else { return };
    let mut lines = Vec::new();
    lines.push(Line::styled(
        match &app.selection_target {
            Some(node) => format!("Install order on {node} (matched to what it has):"),
            None => "Install order (resolved by the engine):".to_string(),
        },
        app.theme.header,
    ));
    for (n, e) in sel.patches.iter().enumerate() {
        lines.push(Line::raw(shown(&format!(
            "{:>3}. {:<10} {}",
            n + 1,
            e.id,
            e.reason
        ))));
    }
    for d in &sel.dropped {
        lines.push(Line::styled(
            format!(
                "     {:<10} dropped: superseded by {}",
                d.id, d.superseded_by
            ),
            app.theme.dim,
        ));
    }
    for p in &sel.problems {
        lines.push(Line::styled(
            shown(&format!("  ! {}", p.message)),
            app.theme.error,
        ));
    }
    lines.push(Line::styled("Esc or Enter closes", app.theme.dim));
    let title = format!(
        " Selection: {} patch(es), {} problem(s) ",
        sel.patches.len(),
        sel.problems.len()
    );
    overlay(app, frame, area, title, lines);
}
