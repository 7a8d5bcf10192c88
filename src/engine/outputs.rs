//! Whether a file a verb is about to write is one it reads: `prepare S -o
//! S` would replace the snapshot it was preparing from, `fleet import
//! --ansible F -o F` the inventory. Compared by device and inode, so a
//! second spelling of the path or a link to it is caught too.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Why an output was refused: it is an input (bad input, exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{output}: is the same file as the {what} {input}; it would be overwritten while it is read. Expected another output path"
)]
pub struct SameFile {
    pub output: String,
    pub what: String,
    pub input: String,
}

/// True when both paths name one existing file (same device and inode).
/// A path that does not exist is no file yet, so never the same.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Refuses `output` when it is one of `inputs` (each with what it is, for
/// the message: "snapshot", "inventory", …).
///
/// Errors: [`SameFile`] naming the output, the input and what it is.
pub fn refuse_overwriting(output: &Path, inputs: &[(&str, &Path)]) -> Result<(), SameFile> {
    match inputs.iter().find(|(_, input)| same_file(output, input)) {
        Some((what, input)) => Err(SameFile {
            output: output.display().to_string(),
            what: what.to_string(),
            input: input.display().to_string(),
        }),
        None => Ok(()),
    }
}
