//! Shell globs as filters use them, compiled once; compared by their text.

use std::fmt;

use globset::{Candidate, GlobBuilder, GlobMatcher};

use super::error::Loc;

/// Characters that make a value a glob rather than a plain string.
pub(super) const GLOB_CHARS: [char; 3] = ['*', '?', '['];

/// A compiled shell glob. Equality and `Debug` use the source text only.
#[derive(Clone)]
pub(super) struct Pattern {
    pub(super) text: String,
    pub(super) kind: PatternKind,
}

#[derive(Clone)]
pub(super) enum PatternKind {
    /// Only `*`s: matches everything.
    Any,
    /// No glob characters: plain string equality.
    Exact,
    /// `literal*`.
    Prefix,
    /// `*literal`.
    Suffix,
    Glob(GlobMatcher),
}

impl Pattern {
    /// Compiles `text`, which starts at byte `at` of the input.
    pub(super) fn compile(text: &str, at: usize) -> Result<Pattern, Loc> {
        let plain = |s: &str| !s.contains(GLOB_CHARS);
        let kind = if plain(text) {
            PatternKind::Exact
        } else if text.chars().all(|c| c == '*') {
            PatternKind::Any
        } else if text.strip_suffix('*').is_some_and(plain) {
            PatternKind::Prefix
        } else if text.strip_prefix('*').is_some_and(plain) {
            PatternKind::Suffix
        } else {
            let glob = GlobBuilder::new(text)
                .literal_separator(false)
                .backslash_escape(false)
                .build()
                .map_err(|e| {
                    let (offset, what) = match e.kind() {
                        globset::ErrorKind::InvalidRange(a, b) => (
                            text.find(&format!("{a}-{b}")).unwrap_or(0),
                            format!("invalid range `{a}-{b}` in a character class; the first character must not sort after the second"),
                        ),
                        kind => (0, format!("invalid glob `{text}`: {kind}")),
                    };
                    Loc {
                        at: at + offset,
                        message: what,
                    }
                })?;
            PatternKind::Glob(glob.compile_matcher())
        };
        Ok(Pattern {
            text: text.to_string(),
            kind,
        })
    }

    pub(super) fn is_match(&self, s: &str) -> bool {
        match &self.kind {
            PatternKind::Any => true,
            PatternKind::Exact => s == self.text,
            PatternKind::Prefix => s.starts_with(&self.text[..self.text.len() - 1]),
            PatternKind::Suffix => s.ends_with(&self.text[1..]),
            PatternKind::Glob(m) => m.is_match_candidate(&Candidate::from_bytes(s.as_bytes())),
        }
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.text == other.text
    }
}

impl Eq for Pattern {}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}
