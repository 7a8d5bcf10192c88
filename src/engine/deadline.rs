//! Child processes that cannot hang the console: each runs in a process
//! group of its own, every read from it and write to it gives up at a
//! deadline, and ending it ends the whole group (an `ssh` and the
//! `ProxyCommand` or shell it started). The node transports and `bootstrap`
//! use these; nothing here knows about nodes.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How long a read may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Until this instant, however much arrives before it (a handshake).
    Until(Instant),
    /// This long without a byte (an operation: anything the other side
    /// sends, a progress event say, starts the count again).
    Silence(Duration),
}

impl Limit {
    /// Time left from now, never negative.
    fn left(self) -> Duration {
        match self {
            Limit::Until(at) => at.saturating_duration_since(Instant::now()),
            Limit::Silence(d) => d,
        }
    }
}

/// A shared, changeable limit: the reader holds one end, its owner sets
/// the limit for the next request through the other.
pub type SharedLimit = Arc<Mutex<Limit>>;

/// Makes `command` start in a process group of its own (its pid is the
/// group id), so [`kill_group`] reaches everything it starts.
pub fn own_group(command: &mut Command) -> &mut Command {
    command.process_group(0)
}

/// Ends the child's process group (the child leads it, see [`own_group`])
/// with SIGKILL, then reaps the child. Safe to call on a child that has
/// already exited.
pub fn kill_group(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id())
        && pid > 0
    {
        // SAFETY: sends a signal to the group led by our own child; a group
        // that is gone makes kill fail with ESRCH, which is harmless.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits until `fd` is ready for `events` or `wait` has passed: `Ok(true)`
/// when ready (or hung up: the next read or write says how), `Ok(false)`
/// at the deadline.
fn ready(fd: RawFd, events: libc::c_short, wait: Duration) -> io::Result<bool> {
    let start = Instant::now();
    loop {
        let left = wait.saturating_sub(start.elapsed());
        // Whole milliseconds, rounded up so a short wait does not spin.
        let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one pollfd we own, for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        match rc {
            n if n > 0 => return Ok(true),
            0 if start.elapsed() >= wait => return Ok(false),
            0 => continue,
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// A reader whose every read gives up with [`io::ErrorKind::TimedOut`]
/// when nothing arrives within the current [`Limit`].
pub struct DeadlineReader<R> {
    inner: R,
    limit: SharedLimit,
}

impl<R: Read + AsRawFd> DeadlineReader<R> {
    /// Wraps `inner`; the limit starts as `limit` and is changed through
    /// the returned handle.
    pub fn new(inner: R, limit: Limit) -> (DeadlineReader<R>, SharedLimit) {
        let shared = Arc::new(Mutex::new(limit));
        (
            DeadlineReader {
                inner,
                limit: Arc::clone(&shared),
            },
            shared,
        )
    }
}

impl<R: Read + AsRawFd> Read for DeadlineReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let limit = *self.limit.lock().unwrap_or_else(|p| p.into_inner());
        if !ready(self.inner.as_raw_fd(), libc::POLLIN, limit.left())? {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "nothing arrived in time",
            ));
        }
        self.inner.read(buf)
    }
}

/// Writes all of `data` to `w` (a pipe), giving up with
/// [`io::ErrorKind::TimedOut`] when the other side stops taking bytes for
/// `silence`. The pipe is switched to non-blocking mode for this (only our
/// end of it: the child's end is unaffected).
pub fn write_within<W: Write + AsRawFd>(
    w: &mut W,
    data: &[u8],
    silence: Duration,
) -> io::Result<()> {
    let fd = w.as_raw_fd();
    // SAFETY: reads and sets the status flags of a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 && flags & libc::O_NONBLOCK == 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
    let mut rest = data;
    while !rest.is_empty() {
        match w.write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !ready(fd, libc::POLLOUT, silence)? {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the other side stopped taking input",
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// How a [`run`] ended.
#[derive(Debug)]
pub enum Ran {
    /// The child exited; its output, whole.
    Exited(Output),
    /// The child was still running at the deadline and its group was
    /// ended; what it had written by then.
    TimedOut {
        waited: Duration,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
}

/// Runs `command` in a group of its own with `input` on its stdin, and
/// collects its output, ending the group if it has not exited within
/// `limit`. Errors: the command could not be started.
pub fn run(command: &mut Command, input: &[u8], limit: Duration) -> io::Result<Ran> {
    let start = Instant::now();
    own_group(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let pid = child.id();
    let stdin = child.stdin.take();
    let out = collect(child.stdout.take());
    let err = collect(child.stderr.take());
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            // A child that does not read its input is not an error here;
            // its exit status says what happened.
            let _ = stdin.write_all(&input);
        }
    });
    let (tx, rx) = mpsc::channel::<io::Result<ExitStatus>>();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(status);
        child
    });
    let ended = rx.recv_timeout(limit);
    if ended.is_err()
        && let Ok(pid) = libc::pid_t::try_from(pid)
    {
        // SAFETY: the child leads its own group and has not been reaped
        // (the waiter has not returned), so the group id is still ours.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let status = match ended {
        Ok(status) => Some(status?),
        Err(_) => {
            let _ = rx.recv();
            None
        }
    };
    let _ = waiter.join();
    let _ = feeder.join();
    // Pipes still held by a process that left the group are not waited
    // for beyond a moment.
    let grace = Duration::from_millis(500);
    let stdout = out.recv_timeout(grace).unwrap_or_default();
    let stderr = err.recv_timeout(grace).unwrap_or_default();
    Ok(match status {
        Some(status) => Ran::Exited(Output {
            status,
            stdout,
            stderr,
        }),
        None => Ran::TimedOut {
            waited: start.elapsed(),
            stdout,
            stderr,
        },
    })
}

/// Reads `from` to its end on a thread; the bytes arrive on the channel.
fn collect(from: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = from {
            let _ = r.read_to_end(&mut buf);
        }
        let _ = tx.send(buf);
    });
    rx
}

/// A duration for people: `2.0 s`.
pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_child_is_ended_with_everything_it_started() {
        // The shell starts a grandchild that would outlive a plain kill.
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("sleep 600 & echo $!; wait");
        let ran = run(&mut cmd, b"", Duration::from_millis(300)).unwrap();
        let Ran::TimedOut { waited, stdout, .. } = ran else {
            panic!("expected a timeout: {ran:?}");
        };
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        let grandchild: libc::pid_t = String::from_utf8_lossy(&stdout).trim().parse().unwrap();
        // A killed process is a zombie until init reaps it; SIGKILL takes
        // effect asynchronously, so wait for that state.
        let state = || {
            std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                .ok()
                .and_then(|s| s.rsplit(')').next()?.trim().chars().next())
        };
        let gone = (0..1000).any(|_| {
            let s = state();
            if matches!(s, None | Some('Z') | Some('X')) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
            false
        });
        assert!(gone, "the grandchild still runs: {:?}", state());
    }

    #[test]
    fn a_child_that_answers_in_time_gives_its_output() {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("cat; echo err >&2; exit 3");
        let Ran::Exited(out) = run(&mut cmd, b"in\n", Duration::from_secs(60)).unwrap() else {
            panic!("timed out");
        };
        assert_eq!(out.stdout, b"in\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn a_read_gives_up_at_its_limit_and_a_byte_resets_silence() {
        let mut child = own_group(Command::new("sh").arg("-c").arg("echo a; exec sleep 600"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (mut r, limit) = DeadlineReader::new(stdout, Limit::Silence(Duration::from_secs(60)));
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf).unwrap(), 2);
        *limit.lock().unwrap() = Limit::Until(Instant::now() + Duration::from_millis(100));
        let e = r.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        kill_group(&mut child);
    }

    #[test]
    fn a_write_to_a_child_that_stops_reading_gives_up() {
        let mut child = own_group(Command::new("sleep").arg("600"))
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // More than any pipe buffer holds.
        let data = vec![b'x'; 4 << 20];
        let e = write_within(&mut stdin, &data, Duration::from_millis(100)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        kill_group(&mut child);
    }
}
