//! The console: a ratatui client of the engine. `app` holds state and key
//! handling, `view` and `panes` draw it, `search` keeps fuzzy matching off
//! the input path, and this file runs the terminal and the event loop.

pub mod app;
pub mod keymap;
pub mod live;
pub mod operate;
pub mod panes;
pub mod search;
pub mod state;
mod targets;
pub mod term;
pub mod text;
pub mod theme;
mod updates;
pub mod view;

use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;

use crate::engine::demo::{self, DemoOptions};
use crate::engine::lab::Lab;
use crate::engine::marks::Marks;
use crate::front::{Failure, Outcome, open_depot};
use app::App;
use state::Effect;
use theme::Theme;

/// What the operator asked of the console's drawing (flags or config);
/// [`Profile::choose`] settles it with the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleOptions {
    /// Colour theme: default, mono, high-contrast, or a user theme name.
    pub theme: Option<String>,
    /// The serial-console profile, asked for explicitly.
    pub serial: bool,
    /// Minimum milliseconds between redraws for live updates.
    pub refresh_ms: Option<u64>,
}

/// How the console draws, from flags and the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub serial: bool,
    pub theme: String,
    pub refresh: Duration,
}

impl Profile {
    pub fn choose(args: &ConsoleOptions, env: &dyn Fn(&str) -> Option<String>) -> Profile {
        let term = env("TERM").unwrap_or_default();
        let locale = env("LC_ALL")
            .filter(|v| !v.is_empty())
            .or_else(|| env("LC_CTYPE").filter(|v| !v.is_empty()))
            .or_else(|| env("LANG"))
            .unwrap_or_default();
        let utf8 = {
            let l = locale.to_ascii_lowercase();
            l.contains("utf-8") || l.contains("utf8")
        };
        let serial =
            args.serial || matches!(term.as_str(), "vt100" | "vt102" | "vt220" | "linux") || !utf8;
        let no_color = env("NO_COLOR").is_some_and(|v| !v.is_empty());
        let theme = args.theme.clone().unwrap_or_else(|| {
            if serial || no_color {
                "mono".into()
            } else {
                "default".into()
            }
        });
        let refresh =
            Duration::from_millis(args.refresh_ms.unwrap_or(if serial { 1000 } else { 100 }));
        Profile {
            serial,
            theme,
            refresh,
        }
    }

    /// What the profile changes in the theme it loaded. The serial profile
    /// draws ASCII only, and spares the line: a selected row is highlighted
    /// from its mark through its id only, and a pane alone on the screen
    /// keeps a plain frame (see [`Theme::compact_selection`] and
    /// [`Theme::plain_lone_frame`]).
    pub fn adjust(&self, theme: &mut Theme) {
        if self.serial {
            theme.ascii = true;
            theme.compact_selection = true;
            theme.plain_lone_frame = true;
        }
    }
}

/// `patchdeck` with no verb: open the console on the lab, creating the demo
/// lab first when the lab does not exist yet.
pub fn run_default(lab: Lab, options: ConsoleOptions) -> Outcome {
    if !lab.exists() {
        eprintln!(
            "patchdeck: no lab at {}; writing the demo lab there",
            lab.root.display()
        );
        demo::write_lab(&lab, DemoOptions::default())
            .map_err(|e| Failure::Failed(format!("{}: {e}", lab.root.display())))?;
    }
    let config = lab.config().map_err(|e| Failure::Input(e.to_string()))?;
    let mut args = options;
    args.refresh_ms = args.refresh_ms.or(config.console.refresh_ms);
    args.theme = args.theme.or(config.console.theme.clone());
    let profile = Profile::choose(&args, &|k| std::env::var(k).ok());
    let dir = config_dir();
    let mut theme = Theme::load(
        &profile.theme,
        dir.as_ref().map(|d| d.join("themes")).as_deref(),
    )
    .map_err(Failure::Input)?;
    let keymap = match dir.map(|d| d.join("keys.toml")).filter(|p| p.is_file()) {
        Some(keys) => {
            let text =
                crate::engine::text::read_file(&keys).map_err(|e| Failure::Input(e.to_string()))?;
            keymap::Keymap::with_user_keys(&text)
                .map_err(|e| Failure::Input(format!("{}: {e}", keys.display())))?
        }
        None => keymap::Keymap::default(),
    };
    profile.adjust(&mut theme);
    let mut app = open_app(&lab, theme)?;
    app.keymap = keymap;
    run(app, lab, profile)
}

/// The user's config directory: `themes/NAME.toml` and `keys.toml`
/// (`$PATCHDECK_CONFIG`, else e.g. `~/.config/patchdeck`).
pub fn config_dir() -> Option<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("PATCHDECK_CONFIG").filter(|v| !v.is_empty()) {
        return Some(dir.into());
    }
    directories::ProjectDirs::from("", "", "patchdeck").map(|d| d.config_dir().to_path_buf())
}

/// Loads everything the console shows at start.
pub fn open_app(lab: &Lab, theme: Theme) -> Result<App, Failure> {
    let config = lab.config().map_err(|e| Failure::Input(e.to_string()))?;
    let depot = open_depot(&lab.depot_dir())?;
    let name = lab_name(&lab.root, std::env::current_dir().ok().as_deref());
    let mut app = App::new(name, depot, &config, theme);
    app.trust = crate::engine::trust::Gate::for_lab(lab)
        .map_err(|e| Failure::Input(e.to_string()))?
        .assess(&app.depot);
    if lab.fleet_path().is_file() {
        let fleet = crate::engine::fleet::Fleet::load_in(&lab.fleet_path(), &lab.root)
            .map_err(|e| Failure::Input(e.to_string()))?;
        app.ops = state::OpsState::new(lab.clone(), fleet);
    }
    // The marks of the last session: a lab whose database cannot be read
    // still opens, without them (the status line says why).
    match Marks::open(lab).and_then(|m| Ok((m.current()?, m.names()?))) {
        Ok((marks, names)) => {
            app.marks = marks
                .into_iter()
                .filter(|id| app.depot.get(id).is_some())
                .collect();
            app.saved_selections = names;
        }
        Err(e) => app.status = Some((format!("marks not restored: {e}"), true)),
    }
    Ok(app)
}

/// Keeps the lab's copy of the marks and saved selections in step with
/// the console: the marks are written as they change (only what changed),
/// and saving or recalling a named selection reads or writes the lab.
struct MarksSync {
    saved: std::collections::BTreeSet<String>,
    /// The lab's selection store, opened at the first write and kept, so a
    /// key that marks a patch costs one small transaction, not an open.
    store: Option<Marks>,
}

impl MarksSync {
    fn new(app: &App) -> MarksSync {
        MarksSync {
            saved: app.marks.clone(),
            store: None,
        }
    }

    fn store(&mut self, lab: &Lab) -> Result<&mut Marks, crate::engine::marks::MarksError> {
        if self.store.is_none() {
            self.store = Some(Marks::open(lab)?);
        }
        Ok(self.store.as_mut().expect("opened just above"))
    }

    fn effect(&mut self, app: &mut App, lab: &Lab, effect: &Effect) {
        let result = match effect {
            Effect::SaveMarks(name) => self.store(lab).and_then(|m| {
                m.save(name, &app.marks)?;
                app.saved_selections = m.names()?;
                app.status = Some((
                    format!("saved {} patch(es) as {name}", app.marks.len()),
                    false,
                ));
                Ok(())
            }),
            Effect::RecallMarks(name) => self.store(lab).and_then(|m| {
                let ids = m.recall(name)?;
                app.recalled(name, ids);
                Ok(())
            }),
            _ => Ok(()),
        };
        if let Err(e) = result {
            app.status = Some((e.to_string(), true));
        }
    }

    fn write(&mut self, app: &mut App, lab: &Lab) {
        if !std::mem::take(&mut app.marks_changed) {
            return;
        }
        let added: Vec<String> = app.marks.difference(&self.saved).cloned().collect();
        let removed: Vec<String> = self.saved.difference(&app.marks).cloned().collect();
        if added.is_empty() && removed.is_empty() {
            return;
        }
        let (a, r): (Vec<&String>, Vec<&String>) =
            (added.iter().collect(), removed.iter().collect());
        match self.store(lab).and_then(|m| m.change_current(&a, &r)) {
            Ok(()) => {
                // The copy follows by the same difference: no whole clone.
                for id in removed {
                    self.saved.remove(&id);
                }
                self.saved.extend(added);
            }
            Err(e) => {
                // Opened again next time, in case the store itself failed.
                self.store = None;
                app.status = Some((format!("marks not saved: {e}"), true));
            }
        }
    }
}

/// How the header names a lab: its path relative to the working directory
/// when it lies below it (`demo-lab`), else its path with the home
/// directory shortened to `~` (`~/.local/share/patchdeck/lab`). The default
/// lab's directory is called `lab`, so its last component alone says nothing.
pub fn lab_name(root: &std::path::Path, cwd: Option<&std::path::Path>) -> String {
    if let Some(rel) = cwd
        .filter(|c| c.parent().is_some())
        .and_then(|c| root.strip_prefix(c).ok())
        && !rel.as_os_str().is_empty()
    {
        return rel.display().to_string();
    }
    if let Some(home) = directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf())
        && let Ok(rel) = root.strip_prefix(&home)
    {
        return format!("~/{}", rel.display());
    }
    root.display().to_string()
}

type Term = ratatui::Terminal<term::ConsoleBackend>;

/// Whether the terminal was opened with the serial profile, for
/// [`restore_terminal`] (which the panic hook calls too).
static SERIAL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Raw mode, a clear screen, and a panic hook that puts the terminal back
/// before the panic message. The default profile uses the alternate screen;
/// the serial profile draws through [`term::SerialBackend`], which sends
/// only what a VT220 knows (no alternate screen there). A terminal that
/// reports 0x0 (common on serial lines) gets `COLUMNS` x `LINES`, else 80x24
/// ([`term::tty_size`]).
fn init_terminal(profile: &Profile) -> std::io::Result<Term> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
    SERIAL.store(profile.serial, std::sync::atomic::Ordering::SeqCst);
    crossterm::terminal::enable_raw_mode()?;
    let backend = if profile.serial {
        let backend = term::SerialBackend::new(term::MeteredStdout::new(), None);
        // On a line whose speed is known, frames go out a step at a time
        // as the line has room (see `event_loop`). 38400 baud is what a
        // pseudo-terminal reports unless someone set it (ssh, tmux, an
        // xterm): it says nothing about the line, and pacing there would
        // only hold frames back.
        term::ConsoleBackend::Serial(Box::new(match term::line_bytes_per_second() {
            Some(speed) if speed != term::PTY_DEFAULT_BYTES_PER_SECOND => backend.paced(),
            _ => backend,
        }))
    } else {
        crossterm::execute!(std::io::stdout(), crossterm::terminal::EnterAlternateScreen)?;
        term::ConsoleBackend::Plain(ratatui::backend::CrosstermBackend::new(
            term::MeteredStdout::new(),
        ))
    };
    let mut terminal = ratatui::Terminal::new(backend)?;
    if profile.serial {
        // The screen holds whatever was there: start from a known one.
        terminal.clear()?;
    }
    Ok(terminal)
}

fn restore_terminal() {
    let _ = crossterm::terminal::disable_raw_mode();
    if SERIAL.load(std::sync::atomic::Ordering::SeqCst) {
        // Plain attributes, whole-screen scrolling, a clear screen with the
        // cursor home and shown: all VT220 sequences.
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = out.write_all(b"\x1b[m\x1b[r\x1b[2J\x1b[H\x1b[?25h");
        let _ = out.flush();
        return;
    }
    let _ = crossterm::execute!(
        std::io::stdout(),
        crossterm::terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

fn run(mut app: App, lab: Lab, profile: Profile) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Failed(format!("cannot start the console runtime: {e}")))?;
    let mut terminal = init_terminal(&profile)
        .map_err(|e| Failure::Failed(format!("cannot open the terminal: {e}")))?;
    let result = runtime.block_on(event_loop(&mut app, &mut terminal, &lab, &profile));
    restore_terminal();
    result
}

/// What finished child processes report back.
struct Finished {
    title: String,
    ok: bool,
    output: String,
}

/// Runs `patchdeck ARGS --lab LAB`. Detached work gets its own session and
/// a log file, so it goes on if the console quits; other work reports its
/// output when it ends.
fn spawn_cli(
    lab: &Lab,
    title: String,
    args: Vec<String>,
    detached: bool,
    done: tokio::sync::mpsc::UnboundedSender<Finished>,
) -> Result<String, String> {
    use std::os::unix::process::CommandExt;
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the patchdeck binary: {e}"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(&args)
        .arg("--lab")
        .arg(&lab.root)
        // The journal attributes what the child changes to the console.
        .env("PATCHDECK_SOURCE", "console")
        .stdin(std::process::Stdio::null());
    if detached {
        let logs = lab.root.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3f");
        let path = logs.join(format!(
            "{}-{stamp}.log",
            args.first().map(String::as_str).unwrap_or("run")
        ));
        let log = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        cmd.stdout(log).stderr(err);
        // SAFETY: setsid in the child before exec touches no shared state.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {title}: {e}"))?;
        // Reaped when it ends, so no zombie outlives it while the console runs.
        std::thread::spawn(move || child.wait());
        return Ok(format!("{title}: started; log {}", path.display()));
    }
    std::thread::spawn(move || {
        let out = cmd.output();
        let f = match out {
            Ok(o) => Finished {
                title,
                ok: o.status.success(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            },
            Err(e) => Finished {
                title,
                ok: false,
                output: e.to_string(),
            },
        };
        let _ = done.send(f);
    });
    Ok(String::new())
}

/// Where the loop goes after an input event.
enum Flow {
    Continue,
    Quit,
    /// Quit once the `rollout pause` child has answered.
    QuitAfterPause,
}

/// The keys an input event stands for. A terminal that delivers Escape and
/// the next key in one read is decoded as Alt+key; the console binds no
/// Alt keys, so such a key is the two keys the operator typed (sequences a
/// VT220 sends, `ESC [ A` and the like, arrive as their own keys).
fn keys_of(event: Event) -> Vec<crossterm::event::KeyEvent> {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    match event {
        Event::Key(key) if key.kind == KeyEventKind::Release => Vec::new(),
        Event::Key(key) if key.modifiers.contains(KeyModifiers::ALT) => vec![
            KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE),
            KeyEvent::new(key.code, key.modifiers - KeyModifiers::ALT),
        ],
        Event::Key(key) => vec![key],
        _ => Vec::new(),
    }
}

/// Hands one key to the app and starts what it asks for.
fn press(
    app: &mut App,
    key: crossterm::event::KeyEvent,
    lab: &Lab,
    search: &std::sync::mpsc::Sender<search::Request>,
    done_tx: &tokio::sync::mpsc::UnboundedSender<Finished>,
    marks: &mut MarksSync,
) -> Flow {
    let effect = app.handle_key(key);
    // Written before anything else happens, quitting included.
    marks.effect(app, lab, &effect);
    marks.write(app, lab);
    match effect {
        Effect::Quit => return Flow::Quit,
        Effect::QuitPausing(id) => {
            let args = vec!["rollout".into(), "pause".into(), id.to_string()];
            let _ = spawn_cli(lab, "pause".into(), args, false, done_tx.clone());
            return Flow::QuitAfterPause;
        }
        Effect::Search {
            generation,
            query,
            candidates,
        } => {
            let _ = search.send(search::Request {
                generation,
                query,
                candidates,
            });
        }
        Effect::Run {
            title,
            args,
            detached,
        } => match spawn_cli(lab, title, args, detached, done_tx.clone()) {
            Ok(note) if !note.is_empty() => app.status = Some((note, false)),
            Ok(_) => {}
            Err(e) => app.status = Some((e, true)),
        },
        Effect::None
        | Effect::Mark(_)
        | Effect::Step(_)
        | Effect::SaveMarks(_)
        | Effect::RecallMarks(_) => {}
    }
    Flow::Continue
}

/// How far ahead of the line a paced frame's next step is written: enough
/// that the line does not idle while the loop wakes up, little enough that
/// a newer frame finds almost nothing of the old one in flight.
const PACE_LEAD: Duration = Duration::from_millis(10);

async fn event_loop(app: &mut App, terminal: &mut Term, lab: &Lab, profile: &Profile) -> Outcome {
    use std::time::Instant;
    let mut marks = MarksSync::new(app);
    let (answer_tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
    let search = search::spawn(app.lines.clone(), answer_tx);
    let (snap_tx, mut snapshots) = tokio::sync::mpsc::unbounded_channel();
    if let Some(fleet) = app.ops.fleet.clone() {
        let every = profile.refresh.max(Duration::from_millis(250));
        live::spawn(lab.clone(), fleet, every, Duration::from_secs(3), snap_tx);
    }
    let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel::<Finished>();
    let mut events = EventStream::new();
    // Keys typed while the rows on screen belong to an older query wait
    // here, in order, until the newest answer arrives: a key acts on the
    // rows the operator sees, not on the rows before the search.
    let mut waiting: std::collections::VecDeque<crossterm::event::KeyEvent> = Default::default();
    // Keys redraw at once; live updates wait for the refresh cap, so a
    // burst of changes costs one frame.
    let mut now_dirty = true;
    let mut live_dirty = false;
    let mut last_draw = Instant::now() - profile.refresh;
    // A frame is not drawn while the line is still carrying the previous
    // one: keys that arrive meanwhile change the state, and the next frame
    // shows where they led. On a 9600-baud line, holding a key down then
    // costs a frame per line-time, and the screen settles one frame after
    // the last key instead of after a backlog of stale frames.
    //
    // The serial backend does better on a line of known speed: it hands
    // the line a frame a step (a scroll, a row) at a time, only as fast as
    // the line carries it, and a newer frame replaces the steps not sent
    // yet. A held key then never leaves more than one row in flight.
    let line_speed = term::line_bytes_per_second();
    let paced = terminal.backend().is_paced();
    let mut line_free_at = Instant::now();
    let mut written = term::MeteredStdout::written();
    loop {
        let due = live_dirty && last_draw.elapsed() >= profile.refresh;
        let line_free = Instant::now() >= line_free_at;
        if (now_dirty || due) && (paced || line_free) {
            terminal
                .draw(|frame| view::render(app, frame))
                .map_err(|e| Failure::Failed(format!("cannot draw: {e}")))?;
            now_dirty = false;
            live_dirty = false;
            last_draw = Instant::now();
            let total = term::MeteredStdout::written();
            if let Some(speed) = line_speed.filter(|_| !paced) {
                let bytes = total.saturating_sub(written) as f64;
                line_free_at = last_draw + Duration::from_secs_f64(bytes / speed);
            }
            written = total;
        }
        if let Some(speed) = line_speed.filter(|_| paced) {
            loop {
                let now = Instant::now();
                if line_free_at > now + PACE_LEAD {
                    break;
                }
                let sent = terminal
                    .backend_mut()
                    .send_step()
                    .map_err(|e| Failure::Failed(format!("cannot draw: {e}")))?;
                let Some(bytes) = sent else { break };
                line_free_at =
                    line_free_at.max(now) + Duration::from_secs_f64(bytes as f64 / speed);
            }
        }
        let mut wait = if now_dirty {
            line_free_at.saturating_duration_since(Instant::now())
        } else if live_dirty {
            let refresh = profile.refresh.saturating_sub(last_draw.elapsed());
            if paced {
                refresh
            } else {
                refresh.max(line_free_at.saturating_duration_since(Instant::now()))
            }
        } else {
            Duration::from_secs(3600)
        };
        if paced && terminal.backend().has_pending() {
            wait = wait.min(line_free_at.saturating_duration_since(Instant::now() + PACE_LEAD));
        }
        let mut flow = Flow::Continue;
        tokio::select! {
            event = events.next() => {
                // Everything already typed is handled before the next
                // frame, so a burst of keys (typeahead, a held key on a
                // slow line) costs one frame of the final state.
                let mut next = event;
                loop {
                    match next {
                        Some(Ok(Event::Resize(..))) => {
                            // Redraw every cell at the new size.
                            terminal.clear().map_err(|e| Failure::Failed(format!("cannot draw: {e}")))?;
                            now_dirty = true;
                        }
                        Some(Ok(event)) => {
                            for key in keys_of(event) {
                                if waiting.is_empty() && !app.rows_pending() {
                                    flow = press(app, key, lab, &search, &done_tx, &mut marks);
                                    if !matches!(flow, Flow::Continue) {
                                        break;
                                    }
                                } else {
                                    waiting.push_back(key);
                                }
                                now_dirty = true;
                            }
                        }
                        Some(Err(e)) => return Err(Failure::Failed(format!("terminal input failed: {e}"))),
                        None => return Ok(()),
                    }
                    if !matches!(flow, Flow::Continue) {
                        break;
                    }
                    // Polled with this task's waker (not `now_or_never`'s
                    // no-op one), so input that arrives later still wakes
                    // the loop.
                    match futures::poll!(events.next()) {
                        std::task::Poll::Ready(more) => next = more,
                        std::task::Poll::Pending => break,
                    }
                }
            }
            Some(answer) = answers.recv() => {
                now_dirty |= app.search_done(answer.generation, answer.hits);
                while !app.rows_pending() {
                    let Some(key) = waiting.pop_front() else { break };
                    flow = press(app, key, lab, &search, &done_tx, &mut marks);
                    now_dirty = true;
                    if !matches!(flow, Flow::Continue) {
                        break;
                    }
                }
            }
            Some(snapshot) = snapshots.recv() => {
                app.apply_snapshot(snapshot);
                live_dirty = true;
            }
            Some(f) = done.recv() => {
                app.run_done(&f.title, f.ok, &f.output);
                now_dirty = true;
            }
            _ = tokio::time::sleep(wait) => {}
        }
        match flow {
            Flow::Continue => {}
            Flow::Quit => return Ok(()),
            Flow::QuitAfterPause => {
                let _ = done.recv().await;
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::lab_name;
    use std::path::Path;

    #[test]
    fn the_header_names_a_lab_by_a_path_that_says_something() {
        let cwd = Path::new("/srv/ops");
        assert_eq!(
            lab_name(Path::new("/srv/ops/demo-lab"), Some(cwd)),
            "demo-lab"
        );
        assert_eq!(
            lab_name(Path::new("/srv/other/lab"), Some(cwd)),
            "/srv/other/lab"
        );
        if let Some(home) = directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf()) {
            let default = home.join(".local/share/patchdeck/lab");
            assert_eq!(
                lab_name(&default, Some(Path::new("/"))),
                "~/.local/share/patchdeck/lab"
            );
        }
    }
}
