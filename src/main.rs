fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, which turns `patchdeck depot list | head` into a
    // panic; a command-line tool should simply stop, as `cat` does.
    // SAFETY: called before any thread starts; restores the default action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    patchdeck::cli::main()
}
