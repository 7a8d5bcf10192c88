use clap::Parser;
use patchdeck::cli::Cli;
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
