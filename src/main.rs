use clap::Parser;
use patchdeck::cli::Cli;
use patchdeck::front::{LogTo, init_logging};
use patchdeck::tui::ConsoleOptions;

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, which turns `patchdeck depot list | head` into a
    // panic; a command-line tool should simply stop, as `cat` does.
    // SAFETY: called before any thread starts; restores the default action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let json = cli.json();
    let level = cli.global.log_level.clone();
    let logging = match &cli.command {
        None => LogTo::File(cli.global.lab().root.join("logs").join("console.log")),
        Some(_) => LogTo::Stderr,
    };
    // A node logs its recoveries, which the operator wants to see.
    let default = match &cli.command {
        Some(patchdeck::cli::Command::Node(_)) => "info",
        _ => "warn",
    };
    if let Err(failure) = init_logging(level.as_deref(), default, logging) {
        return patchdeck::front::exit(Err(failure), json);
    }
    let outcome = match cli.command {
        None => {
            let lab = cli.global.lab();
            let console = cli.global.console;
            let options = ConsoleOptions {
                theme: console.theme,
                serial: console.serial,
                refresh_ms: console.refresh_ms,
            };
            patchdeck::tui::run_default(lab, options)
        }
        Some(command) => patchdeck::cli::dispatch(command, &cli.global),
    };
    patchdeck::front::exit(outcome, json)
}
