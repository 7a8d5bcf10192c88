//! Maintenance windows: a cluster's `[[cluster.window]]` tables (a cron
//! schedule of openings, a duration, a cutoff, a time zone) and the pure
//! arithmetic over them that the rollout runner, `patchdeck windows` and the
//! console ask: is a window open at an instant, when does it close, when is
//! its cutoff (no group drained from then on), when does the next one open.
//! Nothing here reads the clock except [`now`], the one place the system
//! time (or its testing stand-in) enters.
//!
//! Several windows of one cluster act as their union: windows that overlap
//! or touch form one stretch of open time. The stretch closes when its last
//! window does, and its cutoff is that window's cutoff before the close.
//!
//! Openings follow crontab(5) as the `croner` crate implements it: five
//! fields, names for months and days (`JAN`, `SAT`), ranges, steps, lists,
//! and when both day-of-month and day-of-week are restricted a day matching
//! either opens the window. Daylight saving time: an opening whose local
//! time does not exist (02:30 on a spring-forward night in Europe/Berlin)
//! happens at the first instant after the gap (03:00 local); an opening
//! whose local time happens twice (fall back) happens once, at the first.
//! Durations and cutoffs are elapsed time, so a 4h window that opens on a
//! night with a changed clock still lasts four real hours.

use std::sync::Mutex;

use chrono::{DateTime, SubsecRound, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};

/// One `[[cluster.window]]` table as written in fleet.toml; kept in a
/// rollout's plan, so the windows a rollout waits for are the ones it
/// started with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// When the window opens: five crontab(5) fields.
    pub cron: String,
    /// How long it stays open (`4h`, `90m`, `1h30m`).
    pub duration: String,
    /// No group is drained this long before the window closes (default: 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutoff: Option<String>,
    /// IANA time zone of `cron` (default: UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
}

/// Why a window table is refused; [`WindowError::key`] says which key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error(
        "cron {cron:?}: {reason}; expected five crontab(5) fields (minute hour day-of-month month day-of-week), e.g. \"0 2 * * SAT\""
    )]
    Cron { cron: String, reason: String },
    #[error("cron {cron:?} never opens in {tz}")]
    NeverOpens { cron: String, tz: String },
    #[error("tz {tz:?} is not an IANA time zone name; expected e.g. \"Europe/Berlin\" or \"UTC\"")]
    Zone { tz: String },
    #[error("{key} {value:?}: {reason}; expected a span such as \"4h\", \"90m\" or \"1h30m\"")]
    Span {
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("duration {0:?} is zero; a window must stay open for some time")]
    ZeroDuration(String),
    #[error(
        "duration {0:?} is longer than {MAX_DURATION_DAYS} days; expected a maintenance window of at most {MAX_DURATION_DAYS} days, e.g. \"4h\""
    )]
    TooLong(String),
    #[error(
        "cutoff {cutoff:?} is not shorter than duration {duration:?}; no group could ever start in this window"
    )]
    Cutoff { cutoff: String, duration: String },
}

impl WindowError {
    /// The key of the window table the error is about.
    pub fn key(&self) -> &'static str {
        match self {
            WindowError::Cron { .. } | WindowError::NeverOpens { .. } => "cron",
            WindowError::Zone { .. } => "tz",
            WindowError::Span { key, .. } => key,
            WindowError::ZeroDuration(_) | WindowError::TooLong(_) => "duration",
            WindowError::Cutoff { .. } => "cutoff",
        }
    }
}

/// A checked window.
#[derive(Debug, Clone)]
pub struct Window {
    pub spec: WindowSpec,
    cron: Cron,
    /// Elapsed time from opening to closing.
    pub duration: TimeDelta,
    /// Elapsed time before closing from which no group is drained.
    pub cutoff: TimeDelta,
    pub tz: Tz,
}

/// The longest a window may stay open. A week covers any maintenance
/// window an operator means, and keeps every instant computed from one far
/// inside what a date can hold. A cutoff is shorter than its duration.
pub const MAX_DURATION_DAYS: i64 = 7;

fn span(key: &'static str, value: &str) -> Result<TimeDelta, WindowError> {
    let err = |reason: String| WindowError::Span {
        key,
        value: value.to_string(),
        reason,
    };
    let d = humantime::parse_duration(value.trim()).map_err(|e| err(e.to_string()))?;
    TimeDelta::from_std(d).map_err(|_| err("too long".into()))
}

/// The five crontab(5) fields, by name and what each takes.
const FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT"),
];

/// Parses five crontab(5) fields; an error names the field that is wrong
/// and what it takes.
fn parse_cron(text: &str) -> Result<Cron, String> {
    let parser = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build();
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("{} field(s)", fields.len()));
    }
    parser.parse(text).map_err(|whole| {
        // Which field: each tried alone, the others `*`.
        for (i, (name, takes)) in FIELDS.iter().enumerate() {
            let alone: Vec<&str> = (0..5)
                .map(|j| if i == j { fields[j] } else { "*" })
                .collect();
            if let Err(e) = parser.parse(&alone.join(" ")) {
                return format!("{name} field {:?}: {e} ({name} takes {takes})", fields[i]);
            }
        }
        whole.to_string()
    })
}

impl Window {
    /// Checks one window table.
    ///
    /// Errors: a cron that is not five valid fields or never matches, an
    /// unknown zone, a duration or cutoff that is not a span, a zero
    /// duration, a cutoff not shorter than the duration.
    pub fn parse(spec: &WindowSpec) -> Result<Window, WindowError> {
        let tz: Tz = match spec.tz.as_deref() {
            None => Tz::UTC,
            Some(name) => name.trim().parse().map_err(|_| WindowError::Zone {
                tz: name.to_string(),
            })?,
        };
        let cron = parse_cron(&spec.cron).map_err(|reason| WindowError::Cron {
            cron: spec.cron.clone(),
            reason,
        })?;
        let duration = span("duration", &spec.duration)?;
        if duration <= TimeDelta::zero() {
            return Err(WindowError::ZeroDuration(spec.duration.clone()));
        }
        if duration > TimeDelta::days(MAX_DURATION_DAYS) {
            return Err(WindowError::TooLong(spec.duration.clone()));
        }
        let cutoff = match &spec.cutoff {
            Some(c) => span("cutoff", c)?,
            None => TimeDelta::zero(),
        };
        if cutoff >= duration {
            return Err(WindowError::Cutoff {
                cutoff: spec.cutoff.clone().unwrap_or_default(),
                duration: spec.duration.clone(),
            });
        }
        let window = Window {
            spec: spec.clone(),
            cron,
            duration,
            cutoff,
            tz,
        };
        // `0 2 30 2 *` parses but never comes: say so now, not when a
        // rollout waits for it forever.
        let epoch = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single();
        if epoch.and_then(|e| window.next_opening(e, true)).is_none() {
            return Err(WindowError::NeverOpens {
                cron: spec.cron.clone(),
                tz: tz.name().to_string(),
            });
        }
        Ok(window)
    }

    /// The first opening at or after (`inclusive`) or strictly after `t`.
    pub fn next_opening(&self, t: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), inclusive)
            .ok()
            .map(|o| o.with_timezone(&Utc))
    }

    /// The last opening at or before (`inclusive`) or strictly before `t`.
    pub fn last_opening(&self, t: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), inclusive)
            .ok()
            .map(|o| o.with_timezone(&Utc))
    }
}

/// One stretch of open time: windows that overlap or touch, merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub opens: DateTime<Utc>,
    pub closes: DateTime<Utc>,
    /// From this instant on no group is drained (`closes` less the cutoff
    /// of the window that closes the stretch).
    pub cutoff: DateTime<Utc>,
    /// The zone of the window that opens the stretch, for showing times.
    pub tz: Tz,
}

impl Span {
    /// Whether `t` is inside: `opens <= t < closes`.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.opens <= t && t < self.closes
    }
}

/// What the windows say about draining a group at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// The cluster has no windows: any time will do.
    Always,
    /// Inside a window, before its cutoff.
    Open(Span),
    /// Inside a window, at or past its cutoff; `next` opens later.
    PastCutoff { current: Span, next: Option<Span> },
    /// Outside every window; `next` is the next one (`None`: never again).
    Closed { next: Option<Span> },
}

impl Gate {
    /// Whether a group may be drained now.
    pub fn may_drain(&self) -> bool {
        matches!(self, Gate::Always | Gate::Open(_))
    }

    /// The stretch a waiting rollout waits for.
    pub fn next(&self) -> Option<Span> {
        match self {
            Gate::Always | Gate::Open(_) => None,
            Gate::PastCutoff { next, .. } | Gate::Closed { next } => *next,
        }
    }
}

/// How far a stretch is followed: windows chained end to end (a window
/// every hour lasting two) never close, and are reported as closing after
/// this long or after [`CHAIN`] windows, whichever comes first, so the
/// answer stays quick enough for every frame of the console.
const HORIZON: TimeDelta = TimeDelta::days(400);
const CHAIN: usize = 1000;

/// A cluster's windows, as one schedule.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    pub windows: Vec<Window>,
}

impl Schedule {
    /// Checks every window; on failure, the index of the bad one and why.
    pub fn parse(specs: &[WindowSpec]) -> Result<Schedule, (usize, WindowError)> {
        let windows = specs
            .iter()
            .enumerate()
            .map(|(i, s)| Window::parse(s).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Schedule { windows })
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The stretch containing `t`, else the next one to open after `t`;
    /// `None` when no window opens again. Times are taken to the second.
    pub fn span_from(&self, t: DateTime<Utc>) -> Option<Span> {
        let t = t.trunc_subsecs(0);
        // The earliest opening whose window is still open after `t`.
        let (first, w) = self
            .windows
            .iter()
            .filter_map(|w| {
                w.next_opening(t.checked_sub_signed(w.duration)?, false)
                    .map(|o| (o, w))
            })
            .min_by_key(|(o, _)| *o)?;
        // Checked throughout: at the far end of what a date holds there is
        // no next window rather than a panic.
        let mut opens = first;
        let mut closes = first.checked_add_signed(w.duration)?;
        let mut cutoff = closes.checked_sub_signed(w.cutoff)?;
        let mut tz = w.tz;
        // Forward: a window that opens by the close and ends later carries
        // the stretch on (for each window, its last opening by the close
        // ends latest).
        for _ in 0..CHAIN {
            let mut longer = false;
            for w in &self.windows {
                let Some(o) = w.last_opening(closes, true) else {
                    continue;
                };
                let Some(end) = o.checked_add_signed(w.duration) else {
                    continue;
                };
                let end_cutoff = end.checked_sub_signed(w.cutoff)?;
                if end > closes {
                    closes = end;
                    cutoff = end_cutoff;
                    longer = true;
                } else if end == closes {
                    cutoff = cutoff.min(end_cutoff);
                }
            }
            if !longer || closes - opens > HORIZON {
                break;
            }
        }
        // Backward: a window that opened earlier and is still open at the
        // start belongs to the same stretch.
        for _ in 0..CHAIN {
            let mut earlier = false;
            for w in &self.windows {
                if let Some(o) = w.last_opening(opens, false)
                    && o.checked_add_signed(w.duration)
                        .is_some_and(|end| end >= opens)
                {
                    opens = o;
                    tz = w.tz;
                    earlier = true;
                }
            }
            if !earlier || closes - opens > HORIZON {
                break;
            }
        }
        Some(Span {
            opens,
            closes,
            cutoff,
            tz,
        })
    }

    /// The stretch open at `t`, if one is.
    pub fn open_at(&self, t: DateTime<Utc>) -> Option<Span> {
        self.span_from(t).filter(|s| s.contains(t.trunc_subsecs(0)))
    }

    /// Up to `count` stretches from `t` on: the one open at `t`, if any,
    /// then the next ones in order.
    pub fn upcoming(&self, t: DateTime<Utc>, count: usize) -> Vec<Span> {
        let mut out: Vec<Span> = Vec::new();
        let mut from = t;
        while out.len() < count {
            let Some(mut s) = self.span_from(from) else {
                break;
            };
            // A chain that never closes is cut at its limit and found open
            // again there: the next stretch starts where the last one ended.
            if !out.is_empty() && s.opens < from {
                s.opens = from;
            }
            if s.closes <= from {
                break;
            }
            from = s.closes;
            out.push(s);
        }
        out
    }

    /// Whether a group may be drained at `t`, and what comes next.
    pub fn gate(&self, t: DateTime<Utc>) -> Gate {
        if self.is_empty() {
            return Gate::Always;
        }
        let t = t.trunc_subsecs(0);
        match self.span_from(t) {
            Some(s) if s.contains(t) && t < s.cutoff => Gate::Open(s),
            Some(s) if s.contains(t) => Gate::PastCutoff {
                current: s,
                next: self.span_from(s.closes),
            },
            next => Gate::Closed { next },
        }
    }
}

/// A stretch as `windows --json` and `rollout status --json` show it: UTC
/// instants, and the same in the window's zone (RFC 3339 with offset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpanView {
    pub opens: DateTime<Utc>,
    pub closes: DateTime<Utc>,
    pub cutoff: DateTime<Utc>,
    pub tz: String,
    pub opens_local: String,
    pub closes_local: String,
    pub cutoff_local: String,
}

impl Span {
    pub fn view(&self) -> SpanView {
        let local = |t: DateTime<Utc>| t.with_timezone(&self.tz).to_rfc3339();
        SpanView {
            opens: self.opens,
            closes: self.closes,
            cutoff: self.cutoff,
            tz: self.tz.name().to_string(),
            opens_local: local(self.opens),
            closes_local: local(self.closes),
            cutoff_local: local(self.cutoff),
        }
    }
}

/// One cluster's windows at an instant: what `patchdeck windows` lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outlook {
    pub cluster: String,
    pub windows: Vec<WindowSpec>,
    /// A window is open at `now` (`false` without windows).
    pub open: bool,
    /// A group may be drained at `now`: open and before the cutoff, or no
    /// windows at all.
    pub may_drain: bool,
    pub now: DateTime<Utc>,
    /// The stretch open now, if any, then the next ones.
    pub openings: Vec<SpanView>,
}

/// `cluster`'s windows at `now`, with up to `count` stretches.
///
/// Errors: a window that does not parse (fleet.toml is checked when read,
/// so only a hand-made spec gets here).
pub fn outlook(
    cluster: &str,
    specs: &[WindowSpec],
    now: DateTime<Utc>,
    count: usize,
) -> Result<Outlook, WindowError> {
    let schedule = Schedule::parse(specs).map_err(|(_, e)| e)?;
    let now = now.trunc_subsecs(0);
    Ok(Outlook {
        cluster: cluster.to_string(),
        windows: specs.to_vec(),
        open: schedule.open_at(now).is_some(),
        may_drain: schedule.gate(now).may_drain(),
        now,
        openings: schedule
            .upcoming(now, count)
            .iter()
            .map(Span::view)
            .collect(),
    })
}

/// One line on a cluster's windows at `now`, plain ASCII, for the console:
/// `window open until 2026-11-28 06:00 CET (05:00Z)`, `window closed; opens
/// ...`, `no maintenance windows`.
pub fn summary(specs: &[WindowSpec], now: DateTime<Utc>) -> String {
    let Ok(schedule) = Schedule::parse(specs) else {
        return "maintenance windows do not parse".to_string();
    };
    match schedule.gate(now) {
        Gate::Always => "no maintenance windows".to_string(),
        Gate::Open(s) => format!("window open until {}", show(s.closes, s.tz)),
        Gate::PastCutoff { current, .. } => format!(
            "window past cutoff; closes {}",
            show(current.closes, current.tz)
        ),
        Gate::Closed { next: Some(n) } => format!("window closed; opens {}", show(n.opens, n.tz)),
        Gate::Closed { next: None } => "window closed; none opens again".to_string(),
    }
}

/// An instant as an operator reads it in a zone and in UTC:
/// `2026-11-28 02:00 CET (01:00Z)`.
pub fn show(t: DateTime<Utc>, tz: Tz) -> String {
    let local = t.with_timezone(&tz);
    if tz == Tz::UTC {
        return format!("{}Z", t.format("%Y-%m-%d %H:%M"));
    }
    format!(
        "{} ({}Z)",
        local.format("%Y-%m-%d %H:%M %Z"),
        t.format("%H:%M")
    )
}

/// The last instant read from `PATCHDECK_CLOCK_FILE`, kept for a moment
/// when the file is being rewritten (empty or half written).
static LAST_FROM_FILE: Mutex<Option<DateTime<Utc>>> = Mutex::new(None);
/// When this process first asked, for `PATCHDECK_NOW`.
static STARTED: std::sync::OnceLock<(std::time::Instant, Option<DateTime<Utc>>)> =
    std::sync::OnceLock::new();

/// The current instant for window decisions: the system clock, unless a
/// testing hook says otherwise (see docs/windows.md):
///
/// - `PATCHDECK_CLOCK_FILE=PATH`: the file holds an RFC 3339 instant, read
///   at every call, so a test moves time by writing the file;
/// - `PATCHDECK_NOW=INSTANT`: the clock starts at that RFC 3339 instant
///   when the process first asks, and runs at real speed from there.
pub fn now() -> DateTime<Utc> {
    if let Ok(path) = std::env::var("PATCHDECK_CLOCK_FILE")
        && !path.is_empty()
    {
        let read = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
            .map(|t| t.with_timezone(&Utc));
        let mut last = LAST_FROM_FILE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = read {
            *last = Some(t);
        }
        if let Some(t) = *last {
            return t;
        }
        tracing::warn!(
            "PATCHDECK_CLOCK_FILE {path}: no RFC 3339 instant in it; using the system clock"
        );
    }
    let (start, fixed) = STARTED.get_or_init(|| {
        let fixed = std::env::var("PATCHDECK_NOW")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .and_then(|s| match DateTime::parse_from_rfc3339(s.trim()) {
                Ok(t) => Some(t.with_timezone(&Utc)),
                Err(e) => {
                    tracing::warn!(
                        "PATCHDECK_NOW {s:?} is not an RFC 3339 instant ({e}); using the system clock"
                    );
                    None
                }
            });
        (std::time::Instant::now(), fixed)
    });
    match fixed {
        Some(t) => TimeDelta::from_std(start.elapsed())
            .ok()
            .and_then(|d| t.checked_add_signed(d))
            .unwrap_or(*t),
        None => Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test instant")
            .with_timezone(&Utc)
    }

    fn spec(cron: &str, duration: &str, cutoff: Option<&str>, tz: Option<&str>) -> WindowSpec {
        WindowSpec {
            cron: cron.into(),
            duration: duration.into(),
            cutoff: cutoff.map(Into::into),
            tz: tz.map(Into::into),
        }
    }

    fn schedule(specs: &[WindowSpec]) -> Schedule {
        Schedule::parse(specs).expect("windows parse")
    }

    #[test]
    fn bad_tables_say_what_was_expected() {
        let cases = [
            (spec("0 2 * *", "4h", None, None), "cron", "4 field(s)"),
            (spec("0 25 * * *", "4h", None, None), "cron", "crontab(5)"),
            (
                spec("0 2 * * FUNDAY", "4h", None, None),
                "cron",
                "crontab(5)",
            ),
            (spec("0 2 30 2 *", "4h", None, None), "cron", "never opens"),
            (
                spec("0 2 * * SAT", "4h", None, Some("Mars/Olympus")),
                "tz",
                "IANA",
            ),
            (
                spec("0 2 * * SAT", "4 hours-ish", None, None),
                "duration",
                "4h",
            ),
            (spec("0 2 * * SAT", "0s", None, None), "duration", "zero"),
            (
                spec("0 2 * * SAT", "1h", Some("1h"), None),
                "cutoff",
                "not shorter",
            ),
            (
                spec("0 2 * * SAT", "1h", Some("2h"), None),
                "cutoff",
                "not shorter",
            ),
            (
                spec("0 2 * * SAT", "1h", Some("soon"), None),
                "cutoff",
                "90m",
            ),
        ];
        for (s, key, words) in cases {
            let e = Window::parse(&s).expect_err("refused");
            assert_eq!(e.key(), key, "{s:?}: {e}");
            assert!(e.to_string().contains(words), "{s:?}: {e}");
        }
        for ok in ["4h", "90m", "1h30m", "2h 15m"] {
            assert!(Window::parse(&spec("0 2 * * SAT", ok, Some("30m"), None)).is_ok());
        }
    }

    #[test]
    fn a_saturday_night_window_in_berlin() {
        // 2026-11-28 is a Saturday; Berlin is on CET (UTC+1).
        let s = schedule(&[spec("0 2 * * SAT", "4h", Some("1h"), Some("Europe/Berlin"))]);
        let before = at("2026-11-28T00:59:00Z");
        match s.gate(before) {
            Gate::Closed { next: Some(n) } => {
                assert_eq!(n.opens, at("2026-11-28T01:00:00Z"));
                assert_eq!(n.closes, at("2026-11-28T05:00:00Z"));
                assert_eq!(n.cutoff, at("2026-11-28T04:00:00Z"));
            }
            g => panic!("{g:?}"),
        }
        assert!(s.gate(at("2026-11-28T01:00:00Z")).may_drain());
        assert!(s.gate(at("2026-11-28T03:59:59Z")).may_drain());
        match s.gate(at("2026-11-28T04:00:00Z")) {
            Gate::PastCutoff { current, next } => {
                assert_eq!(current.closes, at("2026-11-28T05:00:00Z"));
                assert_eq!(next.map(|n| n.opens), Some(at("2026-12-05T01:00:00Z")));
            }
            g => panic!("{g:?}"),
        }
        assert!(s.open_at(at("2026-11-28T05:00:00Z")).is_none());
        assert_eq!(
            show(at("2026-11-28T01:00:00Z"), Tz::Europe__Berlin),
            "2026-11-28 02:00 CET (01:00Z)"
        );
    }

    #[test]
    fn the_same_cron_in_another_zone_opens_at_another_instant() {
        let utc = schedule(&[spec("0 2 * * *", "1h", None, None)]);
        let tokyo = schedule(&[spec("0 2 * * *", "1h", None, Some("Asia/Tokyo"))]);
        let t = at("2026-06-01T12:00:00Z");
        assert_eq!(
            utc.span_from(t).map(|s| s.opens),
            Some(at("2026-06-02T02:00:00Z"))
        );
        assert_eq!(
            tokyo.span_from(t).map(|s| s.opens),
            Some(at("2026-06-01T17:00:00Z"))
        );
    }

    #[test]
    fn spring_forward_opens_at_the_first_instant_after_the_gap() {
        // 2026-03-29: Berlin skips from 02:00 CET to 03:00 CEST; 02:30 does
        // not exist that night. The window opens at 03:00 CEST (01:00Z) and
        // lasts its full four hours.
        let s = schedule(&[spec("30 2 * * SUN", "4h", None, Some("Europe/Berlin"))]);
        let span = s.span_from(at("2026-03-28T12:00:00Z")).expect("a window");
        assert_eq!(span.opens, at("2026-03-29T01:00:00Z"));
        assert_eq!(span.closes, at("2026-03-29T05:00:00Z"));
        // The Sunday before and after open at 02:30 local as usual.
        let before = s.span_from(at("2026-03-21T12:00:00Z")).expect("a window");
        assert_eq!(before.opens, at("2026-03-22T01:30:00Z"));
        let after = s.span_from(span.closes).expect("a window");
        assert_eq!(after.opens, at("2026-04-05T00:30:00Z"));
    }

    #[test]
    fn fall_back_opens_once() {
        // 2026-10-25: Berlin goes from 03:00 CEST back to 02:00 CET, so
        // 02:30 happens at 00:30Z and again at 01:30Z. One opening, at the
        // first.
        let s = schedule(&[spec("30 2 * * SUN", "30m", None, Some("Europe/Berlin"))]);
        let spans = s.upcoming(at("2026-10-24T12:00:00Z"), 2);
        assert_eq!(spans[0].opens, at("2026-10-25T00:30:00Z"));
        assert_eq!(spans[0].closes, at("2026-10-25T01:00:00Z"));
        assert_eq!(spans[1].opens, at("2026-11-01T01:30:00Z"));
        assert!(s.open_at(at("2026-10-25T01:45:00Z")).is_none());
    }

    #[test]
    fn overlapping_windows_form_one_stretch_with_the_closing_windows_cutoff() {
        let s = schedule(&[
            spec("0 0 * * *", "4h", Some("1h"), None),
            spec("30 3 * * *", "90m", Some("30m"), None),
        ]);
        let span = s.open_at(at("2026-06-01T03:15:00Z")).expect("open");
        assert_eq!(span.opens, at("2026-06-01T00:00:00Z"));
        assert_eq!(span.closes, at("2026-06-01T05:00:00Z"));
        assert_eq!(span.cutoff, at("2026-06-01T04:30:00Z"));
        // 03:15 is past the first window's own cutoff but the stretch goes on.
        assert!(s.gate(at("2026-06-01T03:15:00Z")).may_drain());
        assert!(!s.gate(at("2026-06-01T04:30:00Z")).may_drain());
        // Touching windows merge too.
        let t = schedule(&[
            spec("0 1 * * *", "1h", None, None),
            spec("0 2 * * *", "1h", None, None),
        ]);
        let span = t.open_at(at("2026-06-01T01:30:00Z")).expect("open");
        assert_eq!(span.closes, at("2026-06-01T03:00:00Z"));
    }

    #[test]
    fn the_stretches_of_a_chain_that_never_closes_follow_one_another() {
        let s = schedule(&[
            spec("0 * * * *", "2h", Some("10m"), None),
            spec("0 3 * * *", "1h", Some("59m"), None),
        ]);
        let now = at("2027-01-01T03:30:00Z");
        let spans = s.upcoming(now, 5);
        assert!(spans.len() >= 2, "{spans:?}");
        assert!(spans[0].contains(now), "{spans:?}");
        for pair in spans.windows(2) {
            assert!(pair[1].opens >= pair[0].closes, "{spans:?}");
            assert!(pair[1].closes > pair[1].opens, "{spans:?}");
        }
    }

    #[test]
    fn windows_that_never_close_stop_at_the_horizon() {
        let s = schedule(&[spec("0 * * * *", "2h", None, None)]);
        let t = at("2026-06-01T00:30:00Z");
        let span = s.open_at(t).expect("open");
        assert!(
            span.closes - t >= TimeDelta::hours(CHAIN as i64 - 1),
            "{span:?}"
        );
        let s = schedule(&[spec("0 0 * * *", "25h", None, None)]);
        let span = s.open_at(t).expect("open");
        assert!(span.closes - t >= HORIZON - TimeDelta::days(1), "{span:?}");
        // A window every minute lasting a minute is one long stretch too.
        let s = schedule(&[spec("* * * * *", "1m", None, None)]);
        assert!(s.open_at(t).is_some());
    }

    #[test]
    fn day_of_month_or_day_of_week_as_crontab_says() {
        // Both restricted: the 1st of the month or any Monday.
        let s = schedule(&[spec("0 2 1 * MON", "1h", None, None)]);
        let opens: Vec<_> = s
            .upcoming(at("2026-06-01T12:00:00Z"), 3)
            .iter()
            .map(|s| s.opens)
            .collect();
        assert_eq!(
            opens,
            vec![
                at("2026-06-08T02:00:00Z"),
                at("2026-06-15T02:00:00Z"),
                at("2026-06-22T02:00:00Z"),
            ]
        );
        let july = s.span_from(at("2026-06-29T12:00:00Z")).expect("a window");
        assert_eq!(july.opens, at("2026-07-01T02:00:00Z"));
        // Names, ranges, steps and lists.
        let t = schedule(&[spec("*/20 1-2 * JAN,JUL SAT-SUN", "10m", None, None)]);
        let first = t.span_from(at("2026-06-01T00:00:00Z")).expect("a window");
        assert_eq!(first.opens, at("2026-07-04T01:00:00Z"));
        let next = t.span_from(first.closes).expect("a window");
        assert_eq!(next.opens, at("2026-07-04T01:20:00Z"));
    }

    #[test]
    fn the_console_line_and_the_outlook() {
        let specs = [spec("0 2 * * SAT", "4h", Some("1h"), Some("Europe/Berlin"))];
        let line = |t: &str| summary(&specs, at(t));
        assert_eq!(
            line("2026-11-28T00:00:00Z"),
            "window closed; opens 2026-11-28 02:00 CET (01:00Z)"
        );
        assert_eq!(
            line("2026-11-28T02:00:00Z"),
            "window open until 2026-11-28 06:00 CET (05:00Z)"
        );
        assert_eq!(
            line("2026-11-28T04:10:00Z"),
            "window past cutoff; closes 2026-11-28 06:00 CET (05:00Z)"
        );
        assert_eq!(
            summary(&[], at("2026-11-28T00:00:00Z")),
            "no maintenance windows"
        );
        let o = outlook("edge", &specs, at("2026-11-28T02:00:00.5Z"), 2).expect("outlook");
        assert!(o.open && o.may_drain);
        assert_eq!(o.now, at("2026-11-28T02:00:00Z"));
        assert_eq!(o.openings.len(), 2);
        assert_eq!(o.openings[0].opens_local, "2026-11-28T02:00:00+01:00");
        assert_eq!(o.openings[1].opens, at("2026-12-05T01:00:00Z"));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn cron() -> impl Strategy<Value = String> {
            let minute = prop_oneof![
                (0u32..60).prop_map(|m| m.to_string()),
                Just("*/15".to_string()),
                Just("0,30".to_string()),
            ];
            let hour = prop_oneof![
                (0u32..24).prop_map(|h| h.to_string()),
                Just("1-3".to_string()),
                Just("*/6".to_string()),
                Just("2".to_string()),
            ];
            let dom = prop_oneof![
                Just("*".to_string()),
                (1u32..29).prop_map(|d| d.to_string())
            ];
            let month = prop_oneof![Just("*".to_string()), Just("MAR,OCT".to_string())];
            let dow = prop_oneof![
                Just("*".to_string()),
                Just("SAT".to_string()),
                Just("SUN".to_string()),
                Just("MON-FRI".to_string()),
            ];
            (minute, hour, dom, month, dow)
                .prop_map(|(a, b, c, d, e)| format!("{a} {b} {c} {d} {e}"))
        }

        fn zone() -> impl Strategy<Value = Option<String>> {
            prop_oneof![
                Just(None),
                Just(Some("Europe/Berlin".to_string())),
                Just(Some("America/New_York".to_string())),
                Just(Some("Australia/Lord_Howe".to_string())),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            /// One window: open at t iff some opening o has o <= t < o +
            /// duration (openings listed by walking forward from well
            /// before t); when closed, the next stretch opens after t, at
            /// an opening, and is open then; when open, it closes after t
            /// and is closed at its close.
            #[test]
            fn open_iff_inside_an_opening(
                cron in cron(),
                minutes in 1i64..3000,
                cut in 0i64..100,
                tz in zone(),
                secs in 0i64..(2 * 366 * 86_400),
            ) {
                let cutoff = (cut * minutes / 100).min(minutes - 1);
                let s = spec(&cron, &format!("{minutes}m"), Some(&format!("{cutoff}m")), tz.as_deref());
                let w = Window::parse(&s).expect("generated windows parse");
                let schedule = Schedule { windows: vec![w.clone()] };
                let t = at("2026-01-01T00:00:00Z") + TimeDelta::seconds(secs);
                // The reference: every opening from a day before t - d on.
                let mut o = w.next_opening(t - w.duration - TimeDelta::days(1), true);
                let mut inside = false;
                while let Some(x) = o.filter(|x| *x <= t) {
                    inside |= x + w.duration > t;
                    o = w.next_opening(x, false);
                }
                let open = schedule.open_at(t);
                prop_assert_eq!(open.is_some(), inside, "{} at {}", cron, t);
                match open {
                    Some(span) => {
                        prop_assert!(span.closes > t);
                        // Windows chained for a month or more are cut at
                        // the horizon or the chain limit.
                        if span.closes - span.opens <= TimeDelta::days(30) {
                            prop_assert!(schedule.open_at(span.closes).is_none());
                        }
                        prop_assert!(span.cutoff <= span.closes && span.cutoff > span.opens);
                    }
                    None => {
                        let next = schedule.span_from(t).expect("opens again");
                        prop_assert!(next.opens > t);
                        prop_assert_eq!(Some(next.opens), w.next_opening(t, false));
                        prop_assert!(schedule.open_at(next.opens).is_some());
                    }
                }
            }

            /// Two windows in different zones: open at t iff one of them
            /// is; when closed, the next stretch opens at the earlier of
            /// their next openings; a group may be drained only while open.
            #[test]
            fn several_windows_act_as_their_union(
                a in cron(),
                b in cron(),
                da in 1i64..600,
                db in 1i64..600,
                ta in zone(),
                tb in zone(),
                secs in 0i64..(2 * 366 * 86_400),
            ) {
                let wa = Window::parse(&spec(&a, &format!("{da}m"), None, ta.as_deref())).expect("a");
                let wb = Window::parse(&spec(&b, &format!("{db}m"), None, tb.as_deref())).expect("b");
                let t = at("2026-01-01T00:00:00Z") + TimeDelta::seconds(secs);
                let one = |w: &Window| Schedule { windows: vec![w.clone()] }.open_at(t).is_some();
                let both = Schedule { windows: vec![wa.clone(), wb.clone()] };
                prop_assert_eq!(both.open_at(t).is_some(), one(&wa) || one(&wb), "{} / {} at {}", a, b, t);
                if both.open_at(t).is_none() {
                    let next = [wa.next_opening(t, false), wb.next_opening(t, false)]
                        .into_iter()
                        .flatten()
                        .min();
                    prop_assert_eq!(both.span_from(t).map(|s| s.opens), next);
                    prop_assert!(!both.gate(t).may_drain());
                }
            }
        }
    }
}
