//! Text that came from outside (a patch, a fleet file, a node, a log):
//! made safe to show, capped when quoted in a message, and decoded with a
//! line and byte offset when it is not UTF-8.

use std::borrow::Cow;

/// The most characters of outside input a message quotes.
pub const QUOTE_MAX_CHARS: usize = 120;

/// `s` with every control character made visible, so nothing from outside
/// can move the cursor, clear a screen or retitle a window: C0 controls and
/// DEL in caret notation (`ESC` → `^[`, `DEL` → `^?`), C1 controls and the
/// invisible bidirectional overrides as `<U+XXXX>`. Borrowed when there is
/// nothing to change. JSON output does not need this: its own escaping
/// already writes controls as `\uXXXX`.
pub fn neutralise(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hazardous) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\u{0}'..='\u{1f}' => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
            }
            '\u{7f}' => out.push_str("^?"),
            c if hazardous(c) => out.push_str(&format!("<U+{:04X}>", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`neutralise`] for a message of several lines: each line is made
/// harmless and the line breaks between them are kept, so a refusal that
/// lists one member per line reads as lines, not as `^J`.
pub fn neutralise_lines(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && hazardous(c)) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.split('\n')
            .map(|line| neutralise(line).into_owned())
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// Characters a terminal acts on or that reorder what is shown.
fn hazardous(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` cut to [`QUOTE_MAX_CHARS`] characters, saying how long it was.
pub fn cap(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(QUOTE_MAX_CHARS) {
        None => Cow::Borrowed(s),
        Some((at, _)) => Cow::Owned(format!(
            "{}… ({} bytes in all)",
            s.get(..at).unwrap_or_default(),
            s.len()
        )),
    }
}

/// The most characters of a parser's message [`cap_pieces`] keeps.
pub const MESSAGE_MAX_CHARS: usize = 2000;

/// A parser's message (TOML, serde) made short without losing its list:
/// each piece between backquotes, and each stretch outside them, is
/// [`cap`]ped on its own, so an outside key or value of any length is cut
/// while "expected one of `id`, `dc`, …" keeps every valid key; the whole
/// is then held to [`MESSAGE_MAX_CHARS`].
pub fn cap_pieces(message: &str) -> Cow<'_, str> {
    let pieces: Vec<Cow<'_, str>> = message.split('`').map(cap).collect();
    if pieces.iter().all(|p| matches!(p, Cow::Borrowed(_)))
        && message.chars().count() <= MESSAGE_MAX_CHARS
    {
        return Cow::Borrowed(message);
    }
    let joined = pieces.join("`");
    match joined.char_indices().nth(MESSAGE_MAX_CHARS) {
        None => Cow::Owned(joined),
        Some((at, _)) => Cow::Owned(format!(
            "{}… ({} bytes in all)",
            joined.get(..at).unwrap_or_default(),
            joined.len()
        )),
    }
}

/// `s` capped and quoted for a message, controls escaped (`"a\u{1b}b"`).
pub fn quoted(s: &str) -> String {
    format!("{:?}", cap(s).as_ref())
}

/// At most `n` characters of `s` (a short checksum for a table), never
/// splitting a character and never panicking on short input.
pub fn prefix(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((at, _)) => s.get(..at).unwrap_or(s),
        None => s,
    }
}

/// Decodes file content; bytes that are not UTF-8 are an error giving the
/// 1-based line and the 0-based byte offset of the first bad byte.
pub fn utf8(bytes: Vec<u8>) -> Result<String, (usize, String)> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = bytes
            .get(..at)
            .unwrap_or_default()
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        (
            line,
            format!("not UTF-8: invalid byte at byte offset {at}; the file must be UTF-8 text"),
        )
    })
}

/// A text file that could not be read or understood, naming the file and,
/// where there is one, the line.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    NotUtf8 {
        path: String,
        line: usize,
        message: String,
    },
    /// The text is not what the file must hold (a TOML syntax or schema
    /// error, for instance).
    #[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Syntax {
        path: String,
        line: Option<usize>,
        message: String,
    },
}

/// Reads a text file: `path:LINE: not UTF-8 … byte offset N` when it is
/// not UTF-8, `path: cannot read: …` when it cannot be read.
pub fn read_file(path: &std::path::Path) -> Result<String, FileError> {
    let bytes = std::fs::read(path).map_err(|source| FileError::Read {
        path: path.display().to_string(),
        source,
    })?;
    utf8(bytes).map_err(|(line, message)| FileError::NotUtf8 {
        path: path.display().to_string(),
        line,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parser_message_keeps_its_list_and_cuts_outside_text() {
        let keys: Vec<String> = (0..40).map(|i| format!("`key{i}`")).collect();
        let msg = format!("unknown field `x`, expected one of {}", keys.join(", "));
        assert_eq!(cap_pieces(&msg), msg.as_str());
        let long = "y".repeat(5000);
        let msg = format!("unknown field `{long}`, expected `id`, `dc`");
        let shown = cap_pieces(&msg);
        assert!(shown.ends_with("expected `id`, `dc`"), "{shown}");
        assert!(shown.len() < 300, "{shown}");
    }

    #[test]
    fn controls_are_shown_not_obeyed() {
        assert_eq!(neutralise("plain title"), "plain title");
        assert!(matches!(neutralise("plain"), Cow::Borrowed(_)));
        assert_eq!(neutralise("a\u{1b}[2Jb"), "a^[[2Jb");
        assert_eq!(neutralise("\u{1b}]0;owned\u{7}"), "^[]0;owned^G");
        assert_eq!(neutralise("x\ny\rz\t"), "x^Jy^Mz^I");
        assert_eq!(neutralise_lines("x\ny\rz\t"), "x\ny^Mz^I");
        assert_eq!(neutralise_lines("a\nb"), "a\nb");
        assert_eq!(neutralise("del\u{7f}"), "del^?");
        assert_eq!(neutralise("c1\u{9b}31m"), "c1<U+009B>31m");
        assert_eq!(neutralise("rtl\u{202e}txt"), "rtl<U+202E>txt");
        assert_eq!(neutralise("ünïcödé ✓"), "ünïcödé ✓");
    }

    #[test]
    fn quoted_input_is_capped() {
        let long = "x".repeat(64 << 20);
        let q = quoted(&long);
        assert!(q.len() < 200, "{}", q.len());
        assert!(q.contains(&format!("{} bytes in all", 64 << 20)));
        assert_eq!(quoted("a\u{1b}b"), "\"a\\u{1b}b\"");
    }

    #[test]
    fn prefixes_never_panic() {
        assert_eq!(prefix("abc", 12), "abc");
        assert_eq!(prefix("", 12), "");
        assert_eq!(prefix("ééééé", 2), "éé");
        assert_eq!(prefix("0123456789abcdef", 12), "0123456789ab");
    }

    #[test]
    fn bad_utf8_names_line_and_offset() {
        let (line, msg) = utf8(b"a = 1\nb = \"\xff\"\n".to_vec()).unwrap_err();
        assert_eq!(line, 2);
        assert!(msg.contains("byte offset 11"), "{msg}");
        assert_eq!(utf8(b"ok".to_vec()).unwrap(), "ok");
    }
}
