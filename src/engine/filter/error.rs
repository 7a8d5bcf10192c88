//! Filter errors, located to the character, with what was expected there.

use std::fmt;

/// A filter that does not parse, located to the character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// 1-based character column in `input` where the problem is.
    pub column: usize,
    /// What is wrong and what was expected instead.
    pub message: String,
    /// The text the column refers to: the filter, or for multi-line filter
    /// files the line holding the problem (the message then names the line).
    pub input: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "filter column {}: {}", self.column, self.message)?;
        writeln!(f, "  {}", self.input)?;
        // Copy tabs so the caret lines up under tab-indented input.
        let before = self.column.saturating_sub(1);
        let mut pad: String = self
            .input
            .chars()
            .take(before)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let short = before.saturating_sub(self.input.chars().count());
        pad.extend(std::iter::repeat_n(' ', short));
        write!(f, "  {pad}^")
    }
}

impl std::error::Error for FilterError {}

/// A parse error at a byte offset of the whole text, before it is turned into
/// a line and column.
#[derive(Debug)]
pub(super) struct Loc {
    pub(super) at: usize,
    pub(super) message: String,
}

pub(super) fn fail<T>(at: usize, message: impl Into<String>) -> Result<T, Loc> {
    Err(Loc {
        at,
        message: message.into(),
    })
}

/// Locates a parse error: the line it is on (named in the message when the
/// text has several) and the 1-based character column within that line.
pub(super) fn locate(text: &str, loc: Loc) -> FilterError {
    let mut at = loc.at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    // "Missing something at the end" points just after the last token, not
    // past trailing blank lines.
    if at == text.len() {
        at = text.trim_end().len();
    }
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = &text[line_start..line_end];
    let line = line.strip_suffix('\r').unwrap_or(line);
    let column = text[line_start..at].chars().count() + 1;
    let message = if text.trim_end().contains('\n') {
        let line_no = text[..line_start].matches('\n').count() + 1;
        format!("line {line_no}: {}", loc.message)
    } else {
        loc.message
    };
    FilterError {
        column,
        message,
        input: line.to_string(),
    }
}

/// Shows a character in a message; the end of input has no character.
pub(super) fn describe(c: Option<char>) -> String {
    match c {
        None => "the end of the filter".to_string(),
        Some(c) if c.is_whitespace() || c.is_control() => format!("{c:?}"),
        Some(c) => format!("`{c}`"),
    }
}
