//! The cluster groups pane: the clusters, their logical groups with each
//! member's state (serving, drained, draining, installing, rolling back,
//! restoring, failed), the rollout's current step, a gauge per group and
//! overall, elapsed time, and the event log.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::pane_block;
use super::replication::gauge;
use crate::engine::rollout::{State, StepState};
use crate::tui::app::App;
use crate::tui::operate::member_state;
use crate::tui::state::Pane;
use crate::tui::text::fit;

pub fn render(app: &mut App, frame: &mut Frame, area: Rect) {
    let focused = app.focus == Pane::Groups;
    let theme = &app.theme;
    let block = pane_block(
        theme,
        format!(" Cluster groups: {} cluster(s) ", app.ops.clusters.len()),
        focused,
    );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 4 {
        return;
    }
    let width = inner.width as usize;
    let cluster_rows = (app.ops.clusters.len() as u16).min(inner.height / 4).max(1);
    let [list, body] =
        Layout::vertical([Constraint::Length(cluster_rows), Constraint::Min(1)]).areas(inner);

    app.ops
        .cluster_cursor
        .scroll(cluster_rows as usize, app.ops.clusters.len());
    let mut lines = Vec::new();
    for (i, c) in app
        .ops
        .clusters
        .iter()
        .enumerate()
        .skip(app.ops.cluster_cursor.offset)
        .take(cluster_rows as usize)
    {
        let selected = i == app.ops.cluster_cursor.selected;
        let r = app.ops.rollout_of(&c.id);
        let state = match r {
            Some(r) if r.state.active() && !app.ops.snapshot.running.contains(&r.id) => {
                format!("rollout {} interrupted", r.id)
            }
            Some(r) => format!("rollout {} {}", r.id, r.state.as_str()),
            None => "no rollout".to_string(),
        };
        // Counted from the fleet when the cluster cannot be partitioned,
        // so the refusal below is not read as an empty cluster.
        let members = match &c.partition {
            Ok(p) => p.groups.iter().map(|g| g.members.len()).sum::<usize>(),
            Err(_) => app.ops.fleet.as_ref().map_or(0, |f| {
                f.nodes
                    .iter()
                    .filter(|n| n.cluster.as_deref() == Some(c.id.as_str()))
                    .count()
            }),
        };
        let drifted = app
            .ops
            .snapshot
            .fleet
            .drift(&c.id)
            .is_some_and(|r| r.drifted);
        let text = format!(
            "{} {:<10} {:>2} members  {state}{}",
            if selected { ">" } else { " " },
            c.id,
            members,
            if drifted { "  DRIFTED (Enter)" } else { "" }
        );
        lines.push(Line::styled(
            fit(&text, width),
            if selected && focused {
                theme.selected
            } else {
                Default::default()
            },
        ));
    }
    frame.render_widget(Paragraph::new(lines), list);

    let Some(cluster) = app.ops.selected_cluster() else {
        return;
    };
    let partition = match &cluster.partition {
        Ok(p) => p,
        Err(e) => {
            frame.render_widget(
                Paragraph::new(Line::styled(fit(&e.to_string(), width), theme.error)),
                body,
            );
            return;
        }
    };
    let rollout = app.ops.rollout_of(&cluster.id);
    let mut lines = Vec::new();
    if let Some(r) = rollout {
        let done = r
            .steps
            .iter()
            .filter(|s| s.state == StepState::Done)
            .count();
        let current = r.steps.iter().find(|s| s.state != StepState::Done);
        let elapsed = elapsed(&r.created_at, &r.updated_at, r.state == State::Running);
        lines.push(Line::from(vec![
            Span::styled(format!("rollout {} ", r.id), theme.header),
            Span::raw(format!(
                "{} {} {}/{} steps {elapsed}",
                r.plan.patches.join(" "),
                gauge(done, r.steps.len(), 10),
                done,
                r.steps.len()
            )),
        ]));
        let step = match current {
            Some(s) if r.state == State::Running => format!(
                "now: {} {} {}",
                s.step.kind.as_str(),
                s.step.group,
                s.step.node
            ),
            _ if r.message.is_empty() => r.state.as_str().to_string(),
            _ => format!("{}: {}", r.state.as_str(), r.message),
        };
        let step = crate::tui::text::shown(&step);
        let style = if matches!(r.state, State::Failed | State::RolledBack) {
            theme.error
        } else {
            theme.dim
        };
        // The whole message, wrapped: a halt names the group left drained
        // and the command that restores it.
        for row in crate::tui::text::wrap(&step, width) {
            lines.push(Line::styled(row, style));
        }
    } else {
        lines.push(Line::styled(
            "no rollout yet: mark patches in the depot (1), then r here",
            theme.dim,
        ));
    }
    // The cluster's maintenance windows: open until when, or when next.
    if let Some(windows) = app
        .ops
        .fleet
        .as_ref()
        .and_then(|f| f.clusters.iter().find(|k| k.id == cluster.id))
        .map(|k| &k.windows)
        .filter(|w| !w.is_empty())
    {
        let now = crate::engine::window::now();
        let line = crate::engine::window::summary(windows, now);
        lines.push(Line::styled(fit(&line, width), theme.dim));
    }
    for (gi, g) in partition.groups.iter().enumerate() {
        let steps: Vec<_> = rollout
            .map(|r| r.steps.iter().filter(|s| s.step.group == g.name).collect())
            .unwrap_or_default();
        let done = steps.iter().filter(|s| s.state == StepState::Done).count();
        let mark = if gi == app.ops.group { ">" } else { " " };
        let live = rollout.is_some_and(|r| app.ops.snapshot.running.contains(&r.id));
        let word = rollout
            .map(|r| format!(" {}", r.group_state(&g.name, live)))
            .unwrap_or_default();
        let head = format!(
            "{mark}group {} {} {}/{}{word}",
            g.name,
            gauge(done, steps.len().max(1), 8),
            done,
            steps.len()
        );
        let mut spans = vec![Span::styled(
            head,
            if gi == app.ops.group && focused {
                theme.selected
            } else {
                theme.header
            },
        )];
        for m in &g.members {
            let state = member_state(rollout, &app.ops.snapshot, m);
            let style = match state {
                "failed" | "unreachable" => theme.error,
                "serving" => Default::default(),
                _ => theme.marked,
            };
            spans.push(Span::raw(" "));
            spans.push(Span::styled(format!("{m}:{state}"), style));
        }
        lines.extend(wrap_spans(spans, width));
    }
    let room = (body.height as usize).saturating_sub(lines.len() + 1);
    if room > 0 && !app.ops.log.is_empty() {
        lines.push(Line::styled("events:", theme.header));
        for l in app
            .ops
            .log
            .iter()
            .rev()
            .take(room)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            lines.push(Line::styled(fit(l, width), theme.dim));
        }
    }
    frame.render_widget(
        Paragraph::new(lines).wrap(ratatui::widgets::Wrap { trim: false }),
        body,
    );
}

/// Breaks a line of spans into lines of at most `width` columns, at span
/// boundaries (a member's `id:state` is never split), dropping the space
/// span that would start a continuation line. Wrapping here rather than in
/// the paragraph lets the pane count the rows it has left for events.
fn wrap_spans(spans: Vec<Span<'static>>, width: usize) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let mut current: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for span in spans {
        let w = span.width();
        if used + w > width && !current.is_empty() {
            lines.push(Line::from(std::mem::take(&mut current)));
            used = 0;
            if span.content.trim().is_empty() {
                continue;
            }
        }
        used += w;
        current.push(span);
    }
    if !current.is_empty() {
        lines.push(Line::from(current));
    }
    lines
}

/// `12s`, `3m05s`: since the rollout began (to its last update when it stopped).
fn elapsed(created: &str, updated: &str, running: bool) -> String {
    let parse = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|d| d.with_timezone(&chrono::Utc))
    };
    let Some(start) = parse(created) else {
        return String::new();
    };
    let end = if running {
        chrono::Utc::now()
    } else {
        parse(updated).unwrap_or(start)
    };
    let secs = (end - start).num_seconds().max(0);
    if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}
