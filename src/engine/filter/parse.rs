//! The parser: filter text to [`Filter`]s and [`FilterList`]s (single filters,
//! `--filter` lists and filter files), with errors located to the character.

use std::str::FromStr;

use chrono::NaiveDate;

use super::error::{FilterError, Loc, describe, fail, locate};
use super::model::{Filter, FilterList, KEYS, Key, OPERATORS, Op, Qualifier, Values};
use super::pattern::{GLOB_CHARS, Pattern};
use crate::engine::manifest::{Restart, Severity};
use crate::engine::patch::BUILTIN_CATEGORY;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// One filter on its own: anything after it is an error.
    Single,
    /// A filter file: whitespace between words starts the next filter, and
    /// `#` comments are skipped.
    List,
}

/// The last part of a filter parsed so far, which decides what may follow.
#[derive(Debug, Clone, Copy)]
pub(super) enum Expect {
    Product,
    Fileset,
    Value,
}

pub(super) fn unexpected(c: char, expect: Expect, mode: Mode) -> String {
    let next = match expect {
        Expect::Product => "`.FILESET`, `,QUALIFIER`",
        Expect::Fileset => "`,QUALIFIER`",
        Expect::Value => "`|VALUE`, `,QUALIFIER`",
    };
    let end = match mode {
        Mode::Single => "the end of the filter",
        Mode::List => "whitespace before the next filter",
    };
    let hint = match (c, expect) {
        ('.', Expect::Fileset) => " (product and fileset names cannot contain `.`)",
        ('.', Expect::Product) => " (no spaces are allowed before the `.` of `.FILESET`)",
        _ => "",
    };
    format!(
        "unexpected {}; expected {next} or {end}{hint}",
        describe(Some(c))
    )
}

/// Characters that end a name or value (`.` also ends product names).
pub(super) fn is_delimiter(c: char) -> bool {
    matches!(c, ',' | '|' | '=' | '<' | '>' | '!' | '{' | '}') || c.is_whitespace()
}

pub(super) struct Parser<'a> {
    pub(super) text: &'a str,
    /// Byte offset of the next character.
    pub(super) pos: usize,
    pub(super) mode: Mode,
}

impl<'a> Parser<'a> {
    pub(super) fn new(text: &'a str, mode: Mode) -> Parser<'a> {
        Parser { text, pos: 0, mode }
    }

    pub(super) fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    pub(super) fn peek_second(&self) -> Option<char> {
        self.text[self.pos..].chars().nth(1)
    }

    pub(super) fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Where the whitespace (and, in lists, comments) starting at `from` ends.
    pub(super) fn ws_end(&self, from: usize) -> usize {
        let mut at = from;
        while let Some(c) = self.text[at..].chars().next() {
            if c.is_whitespace() {
                at += c.len_utf8();
            } else if c == '#' && self.mode == Mode::List && self.starts_word(at) {
                at = self.text[at..]
                    .find('\n')
                    .map_or(self.text.len(), |i| at + i);
            } else {
                break;
            }
        }
        at
    }

    /// Whether a `#` at `at` begins a comment: it must start a word.
    pub(super) fn starts_word(&self, at: usize) -> bool {
        self.text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c == '{' || c == '}')
    }

    pub(super) fn skip_ws(&mut self) {
        self.pos = self.ws_end(self.pos);
    }

    /// The next character after any whitespace, without consuming anything.
    pub(super) fn peek_past_ws(&self) -> (usize, Option<char>) {
        let at = self.ws_end(self.pos);
        (at, self.text[at..].chars().next())
    }

    /// Scans a name or value at the current position and returns its end.
    /// With `classes`, `[...]` is a glob character class and may hold
    /// delimiters; `dots` lets `.` be part of the word.
    pub(super) fn scan_word(&mut self, dots: bool, classes: bool) -> Result<&'a str, Loc> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == '[' && classes {
                self.scan_class()?;
            } else if is_delimiter(c) || (c == '.' && !dots) {
                break;
            } else {
                self.bump();
            }
        }
        Ok(&self.text[start..self.pos])
    }

    /// Skips a `[...]` character class, with the same rules as the glob
    /// compiler: `!` or `^` negates, and a `]` right after the opening (or
    /// the negation) is a member rather than the end.
    pub(super) fn scan_class(&mut self) -> Result<(), Loc> {
        let open = self.pos;
        self.bump();
        if matches!(self.peek(), Some('!' | '^')) {
            self.bump();
        }
        if self.peek() == Some(']') {
            self.bump();
        }
        loop {
            match self.bump() {
                Some(']') => return Ok(()),
                Some(c) if !c.is_whitespace() => {}
                _ => {
                    return fail(
                        open,
                        "unclosed `[`: expected `]` to end the character class",
                    );
                }
            }
        }
    }

    /// Parses one filter at the current position (which is not whitespace).
    /// Stops before anything that cannot continue it.
    pub(super) fn filter(&mut self) -> Result<(Filter, Expect), Loc> {
        let start = self.pos;
        match self.peek() {
            None => {
                return fail(
                    start,
                    "empty filter; expected PRODUCT[.FILESET][,QUALIFIER]...",
                );
            }
            Some('.') => {
                return fail(start, "empty product; expected a product glob before `.`");
            }
            Some('#') => {
                return fail(
                    start,
                    "a product glob cannot start with `#` (in filter files `#` starts a comment)",
                );
            }
            Some(c) if is_delimiter(c) => {
                return fail(
                    start,
                    format!("expected a product glob, found {}", describe(Some(c))),
                );
            }
            Some(_) => {}
        }
        let text = self.scan_word(false, true)?;
        let product = Pattern::compile(text, start)?;
        let mut expect = Expect::Product;

        let mut fileset = None;
        if self.peek() == Some('.') {
            self.bump();
            let at = self.pos;
            match self.peek() {
                Some(c) if !is_delimiter(c) && c != '.' => {}
                c => {
                    return fail(
                        at,
                        format!(
                            "empty fileset; expected a fileset glob after `.`, found {}",
                            describe(c)
                        ),
                    );
                }
            }
            let text = self.scan_word(false, true)?;
            fileset = Some(Pattern::compile(text, at)?);
            expect = Expect::Fileset;
            if self.peek() == Some('.') {
                return fail(
                    self.pos,
                    "unexpected `.`; a fileset name cannot contain `.` (expected PRODUCT.FILESET)",
                );
            }
        }

        let mut qualifiers = Vec::new();
        loop {
            let (at, next) = self.peek_past_ws();
            if next != Some(',') {
                break;
            }
            self.pos = at + 1;
            self.skip_ws();
            qualifiers.push(self.qualifier()?);
            expect = Expect::Value;
        }
        Ok((
            Filter {
                product,
                fileset,
                qualifiers,
            },
            expect,
        ))
    }

    /// Parses `KEY OP VALUE[|VALUE]...` at the current position.
    pub(super) fn qualifier(&mut self) -> Result<Qualifier, Loc> {
        let key_at = self.pos;
        let name_len = self.text[key_at..]
            .find(|c: char| is_delimiter(c) || c == '.')
            .unwrap_or(self.text.len() - key_at);
        let name = &self.text[key_at..key_at + name_len];
        if name.is_empty() {
            return fail(
                key_at,
                format!(
                    "expected a qualifier after `,`, found {}; qualifiers start with one of {KEYS}",
                    describe(self.peek())
                ),
            );
        }
        let Some(key) = Key::from_name(name) else {
            return fail(
                key_at,
                format!("unknown qualifier `{name}`; expected one of {KEYS}"),
            );
        };
        self.pos += name_len;
        self.skip_ws();

        let op_at = self.pos;
        let op = match (self.peek(), self.peek_second()) {
            (Some('!'), Some('=')) => Op::NotMatch,
            (Some('='), Some('=')) => Op::Equal,
            (Some('='), _) => Op::Match,
            (Some('>'), Some('=')) => Op::GreaterEqual,
            (Some('<'), Some('=')) => Op::LessEqual,
            (Some('>'), _) => Op::Greater,
            (Some('<'), _) => Op::Less,
            (c, _) => {
                return fail(
                    op_at,
                    format!(
                        "expected an operator after `{name}`, found {}; operators are {OPERATORS}",
                        describe(c)
                    ),
                );
            }
        };
        if op.is_ordering() && !key.is_ordered() {
            return fail(
                op_at,
                format!(
                    "`{name}` has no order, so `{}` cannot compare it; use =, != or == (ordering works on r, d, sev and restart)",
                    op.as_str()
                ),
            );
        }
        self.pos += op.as_str().len();
        self.skip_ws();

        let globs = key.is_text() && matches!(op, Op::Match | Op::NotMatch);
        let mut values = match key {
            _ if globs => Values::Globs(Vec::new()),
            Key::Severity => Values::Severity(Vec::new()),
            Key::Restart => Values::Restart(Vec::new()),
            Key::Hot => Values::Hot(Vec::new()),
            Key::Date => Values::Date(Vec::new()),
            _ => Values::Text(Vec::new()),
        };
        let mut after = op.as_str();
        loop {
            let at = self.pos;
            let word = self.scan_word(true, globs)?;
            if word.is_empty() {
                return fail(
                    at,
                    format!(
                        "expected a value after `{after}`, found {}",
                        describe(self.peek())
                    ),
                );
            }
            push_value(&mut values, op, word, at)?;
            let (next_at, next) = self.peek_past_ws();
            if next != Some('|') {
                break;
            }
            self.pos = next_at + 1;
            self.skip_ws();
            after = "|";
        }
        let builtin = match &values {
            Values::Globs(globs) if key == Key::Category => {
                globs.iter().any(|g| g.is_match(BUILTIN_CATEGORY))
            }
            _ => false,
        };
        Ok(Qualifier {
            key,
            op,
            values,
            builtin,
        })
    }
}

/// Checks and converts one value (`word`, at byte `at`) for its qualifier.
pub(super) fn push_value(values: &mut Values, op: Op, word: &str, at: usize) -> Result<(), Loc> {
    pub(super) fn choose<T: Copy>(
        all: &[T],
        name: impl Fn(T) -> &'static str,
        word: &str,
        what: &str,
        at: usize,
    ) -> Result<T, Loc> {
        match all.iter().find(|v| name(**v).eq_ignore_ascii_case(word)) {
            Some(v) => Ok(*v),
            None => {
                let valid: Vec<&str> = all.iter().map(|v| name(*v)).collect();
                fail(
                    at,
                    format!(
                        "unknown {what} `{word}`; expected one of {}",
                        valid.join(", ")
                    ),
                )
            }
        }
    }
    match values {
        Values::Globs(globs) => globs.push(Pattern::compile(word, at)?),
        Values::Text(texts) => {
            if let Some(i) = word.find(GLOB_CHARS) {
                let c = &word[i..i + 1];
                let why = if op == Op::Equal {
                    "`==` compares exactly".to_string()
                } else {
                    format!("`{}` compares versions", op.as_str())
                };
                return fail(
                    at + i,
                    format!(
                        "{why}, so `{c}` is not a wildcard here; use `=` or `!=` to match a glob"
                    ),
                );
            }
            texts.push(word.to_string());
        }
        Values::Severity(v) => v.push(choose(
            &Severity::ALL,
            Severity::as_str,
            word,
            "severity",
            at,
        )?),
        Values::Restart(v) => v.push(choose(&Restart::ALL, Restart::as_str, word, "restart", at)?),
        Values::Hot(v) => {
            let b = match word.to_ascii_lowercase().as_str() {
                "true" | "yes" => true,
                "false" | "no" => false,
                _ => {
                    return fail(
                        at,
                        format!("`hot` takes true or false (or yes/no), not `{word}`"),
                    );
                }
            };
            v.push(b);
        }
        Values::Date(v) => v.push(parse_date(word, at)?),
    }
    Ok(())
}

/// A `YYYY-MM-DD` date, strictly: four-digit year, two-digit month and day.
pub(super) fn parse_date(word: &str, at: usize) -> Result<NaiveDate, Loc> {
    let b = word.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return fail(
            at,
            format!("bad date `{word}`; expected YYYY-MM-DD, like 2026-01-31"),
        );
    }
    let num = |r: std::ops::Range<usize>| word[r].parse::<u32>().unwrap_or(0);
    NaiveDate::from_ymd_opt(num(0..4) as i32, num(5..7), num(8..10)).map_or_else(
        || {
            fail(
                at,
                format!("bad date `{word}`: there is no such day (expected YYYY-MM-DD)"),
            )
        },
        Ok,
    )
}

/// Parses a filter file (see [`FilterList::parse_file_text`]).
pub(super) fn parse_list(text: &str) -> Result<FilterList, Loc> {
    let mut p = Parser::new(text, Mode::List);
    p.skip_ws();
    let open = if p.peek() == Some('{') {
        let at = p.pos;
        p.bump();
        Some(at)
    } else {
        None
    };
    let mut filters = Vec::new();
    loop {
        p.skip_ws();
        match p.peek() {
            None => match open {
                Some(at) => {
                    return fail(at, "unclosed `{`; expected `}` to end the filter list");
                }
                None => break,
            },
            Some('}') => {
                if open.is_none() {
                    return fail(p.pos, "unexpected `}` without an opening `{`");
                }
                p.bump();
                p.skip_ws();
                if let Some(c) = p.peek() {
                    return fail(
                        p.pos,
                        format!(
                            "unexpected {} after the closing `}}`; expected the end of the file",
                            describe(Some(c))
                        ),
                    );
                }
                break;
            }
            Some('{') => {
                return fail(
                    p.pos,
                    "unexpected `{`; one `{ }` pair may wrap the whole list, and filters cannot nest",
                );
            }
            Some(_) => {}
        }
        let (filter, expect) = p.filter()?;
        filters.push(filter);
        match p.peek() {
            Some(c) if !(c.is_whitespace() || c == '}') => {
                return fail(p.pos, unexpected(c, expect, Mode::List));
            }
            _ => {}
        }
    }
    Ok(FilterList { filters })
}

impl Filter {
    /// Parses one filter. Surrounding whitespace, and whitespace around `,`,
    /// `|` and operators, is allowed.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let mut p = Parser::new(text, Mode::Single);
        let parsed = (|| {
            p.skip_ws();
            let (filter, expect) = p.filter()?;
            p.skip_ws();
            if let Some(c) = p.peek() {
                return fail(p.pos, unexpected(c, expect, Mode::Single));
            }
            Ok(filter)
        })();
        parsed.map_err(|loc| locate(text, loc))
    }
}

impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(text: &str) -> Result<Filter, FilterError> {
        Filter::parse(text)
    }
}

impl<'de> serde::Deserialize<'de> for Filter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Filter, D::Error> {
        let text = String::deserialize(d)?;
        Filter::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl FilterList {
    /// One filter per element, as from repeated `--filter` flags. An error
    /// refers to the element that failed.
    pub fn parse_all<S: AsRef<str>>(texts: &[S]) -> Result<FilterList, FilterError> {
        let filters = texts
            .iter()
            .map(|t| Filter::parse(t.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FilterList { filters })
    }

    /// A filter file: filters separated by whitespace or newlines, the whole
    /// optionally wrapped in `{ }`. A `#` that starts a word begins a comment
    /// running to the end of the line. Whitespace around `,`, `|` and
    /// operators does not split a filter.
    pub fn parse_file_text(text: &str) -> Result<FilterList, FilterError> {
        parse_list(text).map_err(|loc| locate(text, loc))
    }
}
