//! The console: a ratatui client of the engine. `app` holds state and key
//! handling, `view` and `panes` draw it, `search` keeps fuzzy matching off
//! the input path, and this file runs the terminal and the event loop.

pub mod app;
pub mod keymap;
pub mod panes;
pub mod search;
pub mod text;
pub mod theme;
pub mod view;

use clap::Args;
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;

use crate::cli::{Failure, Global, Outcome};
use crate::engine::demo::{self, DemoOptions};
use crate::engine::lab::Lab;
use app::{App, Effect};
use theme::Theme;

#[derive(Debug, Clone, Args)]
pub struct ConsoleArgs {
    /// Colour theme: default, mono, high-contrast, or a user theme name.
    #[arg(long, global = true, value_name = "NAME")]
    pub theme: Option<String>,
}

/// `patchdeck` with no verb: open the console on the lab, creating the demo
/// lab first when the lab does not exist yet.
pub fn run_default(global: &Global) -> Outcome {
    let lab = global.lab();
    if !lab.exists() {
        eprintln!(
            "patchdeck: no lab at {}; writing the demo lab there",
            lab.root.display()
        );
        demo::write_lab(&lab, DemoOptions::default())
            .map_err(|e| Failure::Failed(format!("{}: {e}", lab.root.display())))?;
    }
    let theme_name = global.console.theme.clone().unwrap_or_else(|| {
        if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            "mono".into()
        } else {
            "default".into()
        }
    });
    let theme = Theme::load(&theme_name, config_dir().as_deref()).map_err(Failure::Input)?;
    let app = open_app(&lab, theme)?;
    run(app)
}

/// The user's config directory for themes (`…/patchdeck/themes`).
pub fn config_dir() -> Option<std::path::PathBuf> {
    directories::ProjectDirs::from("", "", "patchdeck").map(|d| d.config_dir().join("themes"))
}

/// Loads everything the console shows at start.
pub fn open_app(lab: &Lab, theme: Theme) -> Result<App, Failure> {
    let config = lab.config().map_err(Failure::Input)?;
    let depot = crate::cli::open_depot(&lab.depot_dir())?;
    let name = lab
        .root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| lab.root.display().to_string());
    Ok(App::new(name, depot, &config, theme))
}

fn run(mut app: App) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Failed(format!("cannot start the console runtime: {e}")))?;
    // ratatui::init installs a panic hook that restores the terminal first.
    let mut terminal = ratatui::try_init()
        .map_err(|e| Failure::Failed(format!("cannot open the terminal: {e}")))?;
    let result = runtime.block_on(event_loop(&mut app, &mut terminal));
    ratatui::restore();
    result
}

async fn event_loop(app: &mut App, terminal: &mut ratatui::DefaultTerminal) -> Outcome {
    let (answer_tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
    let search = search::spawn(app.lines.clone(), answer_tx);
    let mut events = EventStream::new();
    let mut dirty = true;
    loop {
        if dirty {
            terminal
                .draw(|frame| view::render(app, frame))
                .map_err(|e| Failure::Failed(format!("cannot draw: {e}")))?;
            dirty = false;
        }
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => {
                    match app.handle_key(key) {
                        Effect::Quit => return Ok(()),
                        Effect::Search { generation, query, candidates } => {
                            let _ = search.send(search::Request { generation, query, candidates });
                        }
                        Effect::None => {}
                    }
                    dirty = true;
                }
                Some(Ok(Event::Resize(..))) => dirty = true,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(Failure::Failed(format!("terminal input failed: {e}"))),
                None => return Ok(()),
            },
            Some(answer) = answers.recv() => {
                dirty |= app.search_done(answer.generation, answer.hits);
            }
        }
    }
}
