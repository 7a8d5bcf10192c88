//! `patchdeck node --root DIR`: the node side of the protocol on stdio.
//! What the console runs on each node, directly or through OpenSSH. Stdout
//! carries protocol lines only; logs and errors go to stderr.

use std::io;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::engine::protocol;
use crate::front::{Failure, Outcome};

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The node's root directory: `/` on a real node, a directory in a lab.
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// The node's name in answers and errors (default: the root's directory
    /// name, or the host name when the root is `/`).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

pub fn run(args: NodeArgs) -> Outcome {
    if !args.root.is_dir() {
        return Err(Failure::Input(format!(
            "--root {}: not a directory",
            args.root.display()
        )));
    }
    let name = match args.name {
        Some(name) => name,
        None => default_name(&args.root),
    };
    // The console may go away at any moment (its ssh dropped, killed, or a
    // hangup): the operation under way then finishes here rather than being
    // cut off, and the node ends when it next reads (end of input) or
    // writes (EPIPE, an error rather than a fatal SIGPIPE).
    // SAFETY: changes two signal dispositions before any thread starts.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    // Recovery and other engine logs go to stderr (see front::init_logging),
    // never among the answers on stdout.
    protocol::serve(&args.root, &name, io::stdin().lock(), io::stdout().lock())
        .map_err(|e| Failure::Failed(format!("node {name}: {e}")))
}

/// The root's directory name, or for `/` the host name.
fn default_name(root: &Path) -> String {
    let absolute = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    if let Some(name) = absolute.file_name() {
        return name.to_string_lossy().into_owned();
    }
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match String::from_utf8_lossy(&buf[..end]) {
        host if rc == 0 && !host.is_empty() => host.into_owned(),
        _ => "node".into(),
    }
}
