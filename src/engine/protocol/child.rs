//! Child process handling for the client: waiting with a limit, describing
//! exit statuses, keeping a stderr tail, and writing without dying of SIGPIPE.

use std::io::{self, Read, Write};
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Reads until `buf` is full or the file ends; returns the bytes read.
pub(super) fn read_full(f: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Waits up to `limit` for the child to exit.
pub(super) fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(10)),
            _ => return None,
        }
    }
}

pub(super) fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => {
            let name = match signal {
                libc::SIGHUP => " (SIGHUP)",
                libc::SIGINT => " (SIGINT)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGPIPE => " (SIGPIPE)",
                libc::SIGTERM => " (SIGTERM)",
                _ => "",
            };
            format!("killed by signal {signal}{name}")
        }
        _ => status.to_string(),
    }
}

pub(super) fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last few kilobytes a child wrote to stderr, read by a thread so the
/// child never blocks on a full pipe.
pub(super) struct StderrTail {
    pub(super) text: Arc<Mutex<Vec<u8>>>,
    pub(super) done: mpsc::Receiver<()>,
}

pub(super) const TAIL_BYTES: usize = 4096;

impl StderrTail {
    pub(super) fn start(mut stderr: impl Read + Send + 'static) -> StderrTail {
        let text = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        let shared = Arc::clone(&text);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match stderr.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut t = shared.lock().unwrap_or_else(|p| p.into_inner());
                        t.extend_from_slice(&buf[..n]);
                        if t.len() > TAIL_BYTES {
                            let cut = t.len() - TAIL_BYTES;
                            t.drain(..cut);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send(());
        });
        StderrTail { text, done }
    }

    /// The last lines written, waiting up to `limit` for the child's stderr
    /// to close first (so a dying child's last words are in).
    pub(super) fn tail(&self, limit: Duration) -> String {
        let _ = self.done.recv_timeout(limit);
        let t = self.text.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(&t);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let last = &lines[lines.len().saturating_sub(5)..];
        let joined = last.join(" | ");
        if joined.chars().count() > 600 {
            let skip = joined.chars().count() - 600;
            format!("…{}", joined.chars().skip(skip).collect::<String>())
        } else {
            joined
        }
    }
}

/// Writes to a child's stdin without dying of SIGPIPE when the child is
/// gone: the binary restores SIGPIPE's default action (so `| head` works),
/// which would otherwise kill the whole console along with one dead node.
/// SIGPIPE is blocked on this thread for the write and a SIGPIPE the write
/// raised is taken back, so the write just fails with `BrokenPipe`.
/// The write gives up with `TimedOut` when the child takes nothing for
/// `silence` (see [`crate::engine::deadline::write_within`]).
pub(super) fn write_quietly<W: Write + std::os::fd::AsRawFd>(
    w: &mut W,
    data: &[u8],
    silence: Duration,
) -> io::Result<()> {
    let _blocked = SigpipeBlocked::new();
    crate::engine::deadline::write_within(w, data, silence)?;
    w.flush()
}

#[cfg(target_os = "linux")]
pub(super) struct SigpipeBlocked {
    pub(super) was_blocked: bool,
    pub(super) was_pending: bool,
}

#[cfg(target_os = "linux")]
pub(super) fn sigpipe_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        set
    }
}

#[cfg(target_os = "linux")]
pub(super) fn sigpipe_pending() -> bool {
    // SAFETY: sigpending fills a sigset_t we own.
    unsafe {
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending) == 0 && libc::sigismember(&pending, libc::SIGPIPE) == 1
    }
}

#[cfg(target_os = "linux")]
impl SigpipeBlocked {
    fn new() -> SigpipeBlocked {
        let set = sigpipe_set();
        // SAFETY: changes only this thread's signal mask; `old` is ours.
        let was_blocked = unsafe {
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            libc::sigismember(&old, libc::SIGPIPE) == 1
        };
        SigpipeBlocked {
            was_blocked,
            was_pending: sigpipe_pending(),
        }
    }
}

#[cfg(target_os = "linux")]
impl Drop for SigpipeBlocked {
    fn drop(&mut self) {
        let set = sigpipe_set();
        if !self.was_pending && sigpipe_pending() {
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: takes the pending SIGPIPE our write raised; returns at
            // once (zero timeout) whatever happens.
            unsafe {
                while libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) == -1
                    && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
                {
                }
            }
        }
        if !self.was_blocked {
            // SAFETY: restores this thread's mask as it was.
            unsafe {
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) struct SigpipeBlocked;

#[cfg(not(target_os = "linux"))]
impl SigpipeBlocked {
    fn new() -> SigpipeBlocked {
        SigpipeBlocked
    }
}
