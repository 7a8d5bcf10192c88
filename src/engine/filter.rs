//! The filter language: which patches an operator means.
//!
//! A filter is `PRODUCT[.FILESET][,QUALIFIER]...`, modelled on SD-UX software
//! selections. PRODUCT and FILESET are shell globs; each QUALIFIER is
//! `KEY OP VALUE[|VALUE]...`, where `|` means "or" and repeating a qualifier
//! means "and". A [`FilterList`] matches a patch when any of its filters
//! does; an empty list matches every patch.
//!
//! Filters are parsed once (globs compiled, typed values checked) and then
//! evaluated without allocating, so one can be run over a whole depot cheaply.
//! The operator's reference is `docs/filters.md`.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use globset::{Candidate, GlobBuilder, GlobMatcher};

use crate::engine::manifest::{Restart, Severity};
use crate::engine::patch::{BUILTIN_CATEGORY, Patch};
use crate::engine::version;

/// The qualifier keys, as listed in error messages.
const KEYS: &str = "r, a, v, c, id, sev, d, hot, restart";
/// The operators, as listed in error messages.
const OPERATORS: &str = "=, !=, ==, >=, <=, <, >";
/// Characters that make a value a glob rather than a plain string.
const GLOB_CHARS: [char; 3] = ['*', '?', '['];

// ---------------------------------------------------------------------------
// Errors

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
struct Loc {
    at: usize,
    message: String,
}

fn fail<T>(at: usize, message: impl Into<String>) -> Result<T, Loc> {
    Err(Loc {
        at,
        message: message.into(),
    })
}

/// Locates a parse error: the line it is on (named in the message when the
/// text has several) and the 1-based character column within that line.
fn locate(text: &str, loc: Loc) -> FilterError {
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
fn describe(c: Option<char>) -> String {
    match c {
        None => "the end of the filter".to_string(),
        Some(c) if c.is_whitespace() || c.is_control() => format!("{c:?}"),
        Some(c) => format!("`{c}`"),
    }
}

// ---------------------------------------------------------------------------
// Globs

/// A compiled shell glob. Equality and `Debug` use the source text only.
#[derive(Clone)]
struct Pattern {
    text: String,
    kind: PatternKind,
}

#[derive(Clone)]
enum PatternKind {
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
    fn compile(text: &str, at: usize) -> Result<Pattern, Loc> {
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

    fn is_match(&self, s: &str) -> bool {
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

// ---------------------------------------------------------------------------
// The filter's structure

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Version,
    Arch,
    Vendor,
    Category,
    Id,
    Severity,
    Date,
    Hot,
    Restart,
}

impl Key {
    fn from_name(name: &str) -> Option<Key> {
        Some(match name {
            "r" => Key::Version,
            "a" => Key::Arch,
            "v" => Key::Vendor,
            "c" => Key::Category,
            "id" => Key::Id,
            "sev" => Key::Severity,
            "d" => Key::Date,
            "hot" => Key::Hot,
            "restart" => Key::Restart,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Key::Version => "r",
            Key::Arch => "a",
            Key::Vendor => "v",
            Key::Category => "c",
            Key::Id => "id",
            Key::Severity => "sev",
            Key::Date => "d",
            Key::Hot => "hot",
            Key::Restart => "restart",
        }
    }

    /// Keys whose values are free text, matched with globs by `=` and `!=`.
    fn is_text(self) -> bool {
        matches!(
            self,
            Key::Version | Key::Arch | Key::Vendor | Key::Category | Key::Id
        )
    }

    /// Keys that `<`, `<=`, `>=` and `>` can compare.
    fn is_ordered(self) -> bool {
        matches!(
            self,
            Key::Version | Key::Date | Key::Severity | Key::Restart
        )
    }

    /// The text a text key looks at (categories are handled separately).
    fn text(self, patch: &Patch) -> &str {
        match self {
            Key::Version => &patch.manifest.version,
            Key::Arch => &patch.manifest.arch,
            Key::Vendor => &patch.manifest.vendor,
            Key::Id => &patch.id,
            Key::Category | Key::Severity | Key::Date | Key::Hot | Key::Restart => "",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `=`: glob match (equality for typed keys).
    Match,
    /// `!=`: the negation of `=`.
    NotMatch,
    /// `==`: exact (version-aware for `r`).
    Equal,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Match => "=",
            Op::NotMatch => "!=",
            Op::Equal => "==",
            Op::Less => "<",
            Op::LessEqual => "<=",
            Op::Greater => ">",
            Op::GreaterEqual => ">=",
        }
    }

    fn is_ordering(self) -> bool {
        matches!(
            self,
            Op::Less | Op::LessEqual | Op::Greater | Op::GreaterEqual
        )
    }

    /// Whether `actual.cmp(value)` satisfies the operator. `!=` tests
    /// equality here; the caller negates the combined result.
    fn accepts(self, ord: Ordering) -> bool {
        match self {
            Op::Match | Op::NotMatch | Op::Equal => ord == Ordering::Equal,
            Op::Less => ord == Ordering::Less,
            Op::LessEqual => ord != Ordering::Greater,
            Op::Greater => ord == Ordering::Greater,
            Op::GreaterEqual => ord != Ordering::Less,
        }
    }
}

/// The `|`-separated values of one qualifier, typed by key and operator.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Values {
    /// Text keys with `=` or `!=`.
    Globs(Vec<Pattern>),
    /// Text keys with `==`, and `r` with an ordering.
    Text(Vec<String>),
    Severity(Vec<Severity>),
    Restart(Vec<Restart>),
    Hot(Vec<bool>),
    Date(Vec<NaiveDate>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Qualifier {
    key: Key,
    op: Op,
    values: Values,
    /// For `c=`/`c!=`: some value matches the built-in `patch` category, so
    /// every patch has a matching category. Derived from `values`.
    builtin: bool,
}

impl Qualifier {
    fn matches(&self, patch: &Patch) -> bool {
        let m = &patch.manifest;
        let op = self.op;
        let hit = match &self.values {
            Values::Globs(globs) => match self.key {
                Key::Category => {
                    self.builtin
                        || globs
                            .iter()
                            .any(|g| patch.categories.iter().any(|c| g.is_match(c)))
                }
                key => {
                    let text = key.text(patch);
                    globs.iter().any(|g| g.is_match(text))
                }
            },
            Values::Text(values) => match self.key {
                Key::Version => values
                    .iter()
                    .any(|v| op.accepts(version::compare(&m.version, v))),
                Key::Category => values.iter().any(|v| patch.has_category(v)),
                key => {
                    let text = key.text(patch);
                    values.iter().any(|v| text == v)
                }
            },
            Values::Severity(values) => values.iter().any(|v| op.accepts(m.severity.cmp(v))),
            Values::Restart(values) => values.iter().any(|v| op.accepts(m.restart.cmp(v))),
            Values::Hot(values) => values.contains(&m.hot),
            Values::Date(values) => values.iter().any(|v| op.accepts(m.released.cmp(v))),
        };
        if op == Op::NotMatch { !hit } else { hit }
    }
}

impl fmt::Display for Qualifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn join<T>(
            f: &mut fmt::Formatter<'_>,
            items: &[T],
            show: impl Fn(&T, &mut fmt::Formatter<'_>) -> fmt::Result,
        ) -> fmt::Result {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str("|")?;
                }
                show(item, f)?;
            }
            Ok(())
        }
        write!(f, "{}{}", self.key.name(), self.op.as_str())?;
        match &self.values {
            Values::Globs(v) => join(f, v, |g, f| f.write_str(&g.text)),
            Values::Text(v) => join(f, v, |s, f| f.write_str(s)),
            Values::Severity(v) => join(f, v, |s, f| f.write_str(s.as_str())),
            Values::Restart(v) => join(f, v, |r, f| f.write_str(r.as_str())),
            Values::Hot(v) => join(f, v, |b, f| write!(f, "{b}")),
            Values::Date(v) => join(f, v, |d, f| {
                write!(f, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
            }),
        }
    }
}

/// One parsed filter: `PRODUCT[.FILESET][,QUALIFIER]...`.
///
/// Two filters are equal when they have the same structure (the same globs
/// by text, the same keys, operators and values); `hot=yes` equals
/// `hot=true`, and spacing does not matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    product: Pattern,
    fileset: Option<Pattern>,
    qualifiers: Vec<Qualifier>,
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

    /// Whether the patch is one this filter selects.
    pub fn matches(&self, patch: &Patch) -> bool {
        let m = &patch.manifest;
        self.product.is_match(&m.product)
            && self
                .fileset
                .as_ref()
                .is_none_or(|f| f.is_match(m.fileset.as_deref().unwrap_or("")))
            && self.qualifiers.iter().all(|q| q.matches(patch))
    }
}

impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(text: &str) -> Result<Filter, FilterError> {
        Filter::parse(text)
    }
}

/// The canonical text: no spaces, values as parsed (`hot=yes` shows as
/// `hot=true`, severities and restarts in lower case).
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.product.text)?;
        if let Some(fileset) = &self.fileset {
            write!(f, ".{}", fileset.text)?;
        }
        for q in &self.qualifiers {
            write!(f, ",{q}")?;
        }
        Ok(())
    }
}

impl serde::Serialize for Filter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Filter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Filter, D::Error> {
        let text = String::deserialize(d)?;
        Filter::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Several filters; a patch matches when any one of them does. The empty
/// list (the default) matches every patch.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct FilterList {
    filters: Vec<Filter>,
}

impl FilterList {
    pub fn new(filters: Vec<Filter>) -> FilterList {
        FilterList { filters }
    }

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

    pub fn matches(&self, patch: &Patch) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| f.matches(patch))
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    pub fn filters(&self) -> &[Filter] {
        &self.filters
    }
}

/// The filters in canonical form, joined by a single space.
impl fmt::Display for FilterList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, filter) in self.filters.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{filter}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Parsing

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One filter on its own: anything after it is an error.
    Single,
    /// A filter file: whitespace between words starts the next filter, and
    /// `#` comments are skipped.
    List,
}

/// The last part of a filter parsed so far, which decides what may follow.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Product,
    Fileset,
    Value,
}

fn unexpected(c: char, expect: Expect, mode: Mode) -> String {
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
fn is_delimiter(c: char) -> bool {
    matches!(c, ',' | '|' | '=' | '<' | '>' | '!' | '{' | '}') || c.is_whitespace()
}

struct Parser<'a> {
    text: &'a str,
    /// Byte offset of the next character.
    pos: usize,
    mode: Mode,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, mode: Mode) -> Parser<'a> {
        Parser { text, pos: 0, mode }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.text[self.pos..].chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Where the whitespace (and, in lists, comments) starting at `from` ends.
    fn ws_end(&self, from: usize) -> usize {
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
    fn starts_word(&self, at: usize) -> bool {
        self.text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c == '{' || c == '}')
    }

    fn skip_ws(&mut self) {
        self.pos = self.ws_end(self.pos);
    }

    /// The next character after any whitespace, without consuming anything.
    fn peek_past_ws(&self) -> (usize, Option<char>) {
        let at = self.ws_end(self.pos);
        (at, self.text[at..].chars().next())
    }

    /// Scans a name or value at the current position and returns its end.
    /// With `classes`, `[...]` is a glob character class and may hold
    /// delimiters; `dots` lets `.` be part of the word.
    fn scan_word(&mut self, dots: bool, classes: bool) -> Result<&'a str, Loc> {
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
    fn scan_class(&mut self) -> Result<(), Loc> {
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
    fn filter(&mut self) -> Result<(Filter, Expect), Loc> {
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
    fn qualifier(&mut self) -> Result<Qualifier, Loc> {
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
fn push_value(values: &mut Values, op: Op, word: &str, at: usize) -> Result<(), Loc> {
    fn choose<T: Copy>(
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
fn parse_date(word: &str, at: usize) -> Result<NaiveDate, Loc> {
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
fn parse_list(text: &str) -> Result<FilterList, Loc> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::manifest::Manifest;

    fn manifest() -> Manifest {
        Manifest {
            id: None,
            title: "t".into(),
            description: String::new(),
            product: "gateway".into(),
            fileset: Some("core".into()),
            version: "10.1.3".into(),
            vendor: "acme".into(),
            arch: "x86_64".into(),
            categories: vec![],
            severity: Severity::High,
            released: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
            supersedes: vec![],
            requires: vec![],
            restart: Restart::Service,
            hot: false,
            kernel: false,
            base_version: None,
            files: vec![],
        }
    }

    /// `gateway.core` 10.1.3 by acme, high, service restart, 2026-03-01,
    /// categories `security` and `critical_patch`.
    fn patch() -> Patch {
        let mut p = Patch::new("GW-1001".into(), "GW-1001.patch".into(), manifest());
        p.categories = vec!["critical_patch".into(), "security".into()];
        p
    }

    fn with(edit: impl FnOnce(&mut Patch)) -> Patch {
        let mut p = patch();
        edit(&mut p);
        p
    }

    fn f(text: &str) -> Filter {
        Filter::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse:\n{e}"))
    }

    fn hits(text: &str, p: &Patch) -> bool {
        f(text).matches(p)
    }

    fn err(text: &str) -> FilterError {
        match Filter::parse(text) {
            Ok(filter) => panic!("{text:?} should not parse, got {filter}"),
            Err(e) => e,
        }
    }

    /// Asserts the error's column and that its message mentions `needle`.
    fn err_at(text: &str, column: usize, needle: &str) {
        let e = err(text);
        assert_eq!(e.column, column, "{text:?}:\n{e}");
        assert!(
            e.message.contains(needle),
            "{text:?}: message should mention {needle:?}:\n{e}"
        );
        assert_eq!(e.input, text);
    }

    #[test]
    fn product_and_fileset_globs() {
        let p = patch();
        for yes in [
            "gateway",
            "*",
            "*.*",
            "gate*",
            "*way",
            "g?teway",
            "[fg]ateway",
            "[!x]ateway.c*",
            "gateway.core",
            "gateway.[a-c]ore",
            "*.core",
            "g*y.*e",
        ] {
            assert!(hits(yes, &p), "{yes}");
        }
        for no in [
            "gate",
            "gateway.lib",
            "X11",
            "*.lib",
            "[!g]ateway",
            "gateway.?",
            "Gateway",
        ] {
            assert!(!hits(no, &p), "{no}");
        }
    }

    #[test]
    fn missing_fileset_matches_as_empty() {
        let p = with(|p| p.manifest.fileset = None);
        assert!(hits("gateway", &p));
        assert!(hits("*.*", &p));
        assert!(hits("gateway.*", &p));
        assert!(!hits("gateway.?*", &p), "`?*` needs a fileset");
        assert!(!hits("gateway.core", &p));
    }

    #[test]
    fn version_qualifiers() {
        let p = patch(); // 10.1.3
        assert!(hits("*,r=10.1.*", &p));
        assert!(hits("*,r=10.1.3", &p));
        assert!(!hits("*,r=10.1", &p), "`=` is a glob on the text");
        assert!(hits("*,r!=10.2*", &p));
        assert!(!hits("*,r!=10.*", &p));
        assert!(hits("*,r==10.1.3", &p));
        assert!(hits("*,r>=10.1", &p));
        assert!(hits("*,r>10.1", &p));
        assert!(hits("*,r>9.99", &p), "numeric fields compare as numbers");
        assert!(!hits("*,r<10.1.3", &p));
        assert!(hits("*,r<=10.1.3", &p));
        assert!(hits("*,r<10.1.10", &p));
        assert!(!hits("*,r>10.1.3", &p));
    }

    #[test]
    fn exact_version_equality_is_version_aware() {
        let p = with(|p| p.manifest.version = "1.2.0".into());
        assert!(hits("*,r==1.2", &p));
        assert!(hits("*,r==1.02.0", &p));
        assert!(!hits("*,r==1.2.1", &p));
        // `=` without wildcards compares the text, so it is not version-aware.
        assert!(!hits("*,r=1.2", &p));
        assert!(hits("*,r!=1.2", &p));
    }

    #[test]
    fn arch_vendor_and_id() {
        let p = patch();
        assert!(hits("*,a=x86_64", &p));
        assert!(hits("*,a=x86*", &p));
        assert!(hits("*,a==x86_64", &p));
        assert!(!hits("*,a==x86", &p));
        assert!(hits("*,a!=ia64|any", &p));
        assert!(hits("*,v=acme", &p));
        assert!(!hits("*,v=ac", &p));
        assert!(hits("*,v!=other", &p));
        assert!(hits("*,id=GW-*", &p));
        assert!(hits("*,id==GW-1001", &p));
        assert!(!hits("*,id=GW-1002", &p));
        assert!(!hits("*,id!=GW-1001", &p));
    }

    #[test]
    fn categories() {
        let p = patch(); // critical_patch, security
        assert!(hits("*,c=security", &p));
        assert!(hits("*,c=crit*", &p));
        assert!(hits("*,c==critical_patch", &p));
        assert!(!hits("*,c==critical", &p));
        assert!(!hits("*,c=enhancement", &p));
        assert!(hits("*,c!=enhancement", &p));
        assert!(!hits("*,c!=security", &p), "some category matches");
        assert!(!hits("*,c!=*_patch", &p));
    }

    #[test]
    fn builtin_patch_category_matches_every_patch() {
        let bare = with(|p| p.categories.clear());
        for text in [
            "*,c=patch",
            "*,c==patch",
            "*,c=pat*",
            "*,c=*",
            "*,c=nope|patch",
        ] {
            assert!(hits(text, &bare), "{text}");
            assert!(hits(text, &patch()), "{text}");
        }
        assert!(!hits("*,c!=patch", &bare));
        assert!(!hits("*,c!=p*", &patch()));
        assert!(!hits("*,c=security", &bare));
    }

    #[test]
    fn severity_restart_hot_and_date() {
        let p = patch(); // high, service, not hot, 2026-03-01
        assert!(hits("*,sev=high", &p));
        assert!(hits("*,sev==HIGH", &p));
        assert!(hits("*,sev>=medium", &p));
        assert!(hits("*,sev>=high", &p));
        assert!(!hits("*,sev>high", &p));
        assert!(hits("*,sev<critical", &p));
        assert!(!hits("*,sev<=medium", &p));
        assert!(hits("*,sev!=low|medium", &p));
        assert!(!hits("*,sev!=low|high", &p));

        assert!(hits("*,restart=service", &p));
        assert!(hits("*,restart<reboot", &p));
        assert!(hits("*,restart>none", &p));
        assert!(!hits("*,restart>=reboot", &p));
        assert!(hits("*,restart!=reboot", &p));

        assert!(hits("*,hot=false", &p));
        assert!(hits("*,hot==no", &p));
        assert!(!hits("*,hot=yes", &p));
        assert!(hits("*,hot!=true", &p));
        assert!(hits("*,hot=true", &with(|p| p.manifest.hot = true)));

        assert!(hits("*,d=2026-03-01", &p));
        assert!(hits("*,d==2026-03-01", &p));
        assert!(hits("*,d>=2026-01-01", &p));
        assert!(hits("*,d<2026-03-02", &p));
        assert!(!hits("*,d>2026-03-01", &p));
        assert!(hits("*,d<=2026-03-01", &p));
        assert!(hits("*,d!=2026-03-02", &p));
    }

    #[test]
    fn bar_means_or() {
        let p = patch();
        assert!(hits("*,c=enhancement|security", &p));
        assert!(hits("*,c=critical|security", &p));
        assert!(!hits("*,c=enhancement|defect", &p));
        assert!(hits("*,sev=low|high", &p));
        assert!(hits("*,r==9.0|10.1.3", &p));
        assert!(!hits("*,c!=enhancement|security", &p), "none of them");
        assert!(hits("*,c!=enhancement|defect", &p));
    }

    #[test]
    fn repetition_means_and() {
        let p = patch(); // 10.1.3
        assert!(hits("*,r>=10.0,r<11.0", &p));
        assert!(!hits("*,r>=10.0,r<10.1", &p));
        assert!(hits("*,c=security,c=critical_patch", &p));
        assert!(!hits("*,c=security,c=enhancement", &p));
        assert!(hits("gateway.core,r>=10.1,sev>=high", &p));
        assert!(!hits("gateway.core,r>=10.1,sev>=critical", &p));
    }

    #[test]
    fn spaces_around_tokens_are_tolerated() {
        let spaced = f("  gateway.core , r >= 10.1 ,c = security | defect ,sev!= low  ");
        assert_eq!(spaced, f("gateway.core,r>=10.1,c=security|defect,sev!=low"));
        assert_eq!(
            spaced.to_string(),
            "gateway.core,r>=10.1,c=security|defect,sev!=low"
        );
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        for (text, canon) in [
            ("*.*", "*.*"),
            ("X11", "X11"),
            ("k , hot = YES", "k,hot=true"),
            ("k,sev>=HIGH|Critical", "k,sev>=high|critical"),
            ("k,restart<Reboot", "k,restart<reboot"),
            (
                "k,d>=2026-01-01,d<2027-01-01",
                "k,d>=2026-01-01,d<2027-01-01",
            ),
            ("[!a-c]*.[]x]?,c!=[a,b]*", "[!a-c]*.[]x]?,c!=[a,b]*"),
            ("p,r==1.2,id=A*|B?", "p,r==1.2,id=A*|B?"),
        ] {
            let filter = f(text);
            assert_eq!(filter.to_string(), canon, "{text}");
            assert_eq!(f(canon), filter, "{text}");
            assert_eq!(canon.parse::<Filter>().unwrap(), filter);
        }
    }

    #[test]
    fn lists_match_when_any_filter_does() {
        let p = patch();
        let list = FilterList::parse_all(&["X11", "gateway,sev=critical"]).unwrap();
        assert!(!list.matches(&p));
        let list = FilterList::parse_all(&["X11", "gateway,sev=high"]).unwrap();
        assert!(list.matches(&p));
        assert_eq!(list.filters().len(), 2);
        assert_eq!(list.to_string(), "X11 gateway,sev=high");
        let empty = FilterList::default();
        assert!(empty.is_empty());
        assert!(empty.matches(&p));
        assert_eq!(FilterList::parse_all::<&str>(&[]).unwrap(), empty);
        assert_eq!(FilterList::new(vec![f("X11")]).filters(), &[f("X11")]);
    }

    #[test]
    fn filter_files() {
        let text = "{\n  # security fixes everywhere\n  *.*,c=security|critical\n\n  gateway.core , r >= 10.1   # and the gateway\n  kernel,hot=true\n}\n";
        let list = FilterList::parse_file_text(text).unwrap();
        assert_eq!(
            list.to_string(),
            "*.*,c=security|critical gateway.core,r>=10.1 kernel,hot=true"
        );
        let bare = FilterList::parse_file_text("X11 gateway\n\tkernel ").unwrap();
        assert_eq!(bare.filters().len(), 3);
        assert!(FilterList::parse_file_text("").unwrap().is_empty());
        assert!(FilterList::parse_file_text(" { } ").unwrap().is_empty());
        assert!(
            FilterList::parse_file_text("# nothing\n")
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            FilterList::parse_file_text("{*.*}").unwrap().to_string(),
            "*.*"
        );
        // A filter split over lines at `,` and `|` stays one filter.
        let split = FilterList::parse_file_text("*.*,\n  c=a|\n  b,\n  sev>=high").unwrap();
        assert_eq!(split.to_string(), "*.*,c=a|b,sev>=high");
        // The display of a list reads back as the same list.
        assert_eq!(
            FilterList::parse_file_text(&list.to_string()).unwrap(),
            list
        );
    }

    #[test]
    fn filter_file_errors_name_line_and_column() {
        let e = FilterList::parse_file_text("{\n  *.*\n  x11,q=1\n}").unwrap_err();
        assert_eq!(e.column, 7, "{e}");
        assert_eq!(e.input, "  x11,q=1");
        assert!(
            e.message.starts_with("line 3: unknown qualifier `q`"),
            "{e}"
        );

        let e = FilterList::parse_file_text("  {\n *.*\n").unwrap_err();
        assert_eq!((e.column, e.input.as_str()), (3, "  {"), "{e}");
        assert!(e.message.contains("unclosed `{`"), "{e}");

        let e = FilterList::parse_file_text("*.* }").unwrap_err();
        assert_eq!(e.column, 5, "{e}");
        let e = FilterList::parse_file_text("{ *.* } x").unwrap_err();
        assert_eq!(e.column, 9, "{e}");
        let e = FilterList::parse_file_text("a b,c=1=2").unwrap_err();
        assert_eq!(e.column, 8, "{e}");
        assert!(
            e.message.contains("whitespace before the next filter"),
            "{e}"
        );
        let e = FilterList::parse_file_text("a { b }").unwrap_err();
        assert_eq!(e.column, 3, "{e}");
        let e = FilterList::parse_file_text("a .core").unwrap_err();
        assert_eq!(e.column, 3, "{e}");

        let e = FilterList::parse_all(&["*.*", "*.*,c>a"]).unwrap_err();
        assert_eq!((e.column, e.input.as_str()), (6, "*.*,c>a"), "{e}");
    }

    #[test]
    fn ordering_on_unordered_keys_is_an_error() {
        for key in ["a", "v", "c", "id", "hot"] {
            for op in [">=", "<=", "<", ">"] {
                let text = format!("*.*,{key}{op}x");
                err_at(&text, 5 + key.len(), "has no order");
            }
        }
    }

    #[test]
    fn errors_point_at_the_right_column() {
        err_at("*.*,c=a,x=1", 9, "unknown qualifier `x`");
        err_at("*.*,c=a,x=1", 9, KEYS);
        err_at("", 1, "empty filter");
        err_at("   ", 1, "empty filter");
        err_at(".core", 1, "empty product");
        err_at(",c=a", 1, "expected a product glob");
        err_at("=x", 1, "expected a product glob");
        err_at("X11.", 5, "empty fileset");
        err_at("X11.,c=a", 5, "empty fileset");
        err_at("X11.a.b", 6, "cannot contain `.`");
        err_at("*.*,", 5, "expected a qualifier");
        err_at("*.*, ", 5, "expected a qualifier");
        err_at("*.*,,c=a", 5, "expected a qualifier");
        err_at("*.*,c", 6, "expected an operator");
        err_at("*.*,c a", 7, "expected an operator");
        err_at("*.*,c!a", 6, "expected an operator");
        err_at("*.*,c=", 7, "expected a value after `=`");
        err_at("*.*,c= ,x", 8, "expected a value");
        err_at("*.*,c=a|", 9, "expected a value after `|`");
        err_at("*.*,c=|a", 7, "expected a value");
        err_at("*.*,c==", 8, "expected a value");
        err_at("*.*,c===a", 8, "expected a value");
        err_at("*.*,c=[ab", 7, "unclosed `[`");
        err_at("*.*,c=a[b c", 8, "unclosed `[`");
        err_at("X1[1", 3, "unclosed `[`");
        err_at("*.*,c=a[z-b]", 9, "invalid range `z-b`");
        err_at("*.*,sev>=urgent", 10, "low, medium, high, critical");
        err_at("*.*,sev=hi*", 9, "unknown severity");
        err_at("*.*,restart=maybe", 13, "none, service, reboot");
        err_at("*.*,hot=perhaps", 9, "true or false");
        err_at("*.*,d>=2026-13-01", 8, "no such day");
        err_at("*.*,d>=2026-02-30", 8, "no such day");
        err_at("*.*,d=26-01-01", 7, "YYYY-MM-DD");
        err_at("*.*,d=2026-01-01|tomorrow", 18, "YYYY-MM-DD");
        err_at("*.*,r==1.*", 10, "not a wildcard");
        err_at("*.*,r>=1.[2]", 10, "not a wildcard");
        err_at("*.*,id==A?", 10, "not a wildcard");
        err_at("*.*,c=a b", 9, "unexpected `b`");
        err_at("*.*,c=a=b", 8, "unexpected `=`");
        err_at("X11 core", 5, "unexpected `c`");
        err_at("X11 .core", 5, "no spaces");
        err_at("X11}", 4, "unexpected `}`");
        err_at("#x", 1, "cannot start with `#`");
        err_at("*.*,c\u{e9}=a", 5, "unknown qualifier `c\u{e9}`");
        // Columns count characters, not bytes.
        err_at("\u{e9}\u{e9},q=1", 4, "unknown qualifier `q`");
    }

    #[test]
    fn error_display_shows_a_caret_under_the_column() {
        let e = err("*.*,c=a,x=1");
        assert_eq!(
            e.to_string(),
            "filter column 9: unknown qualifier `x`; expected one of r, a, v, c, id, sev, d, hot, restart\n  *.*,c=a,x=1\n          ^"
        );
        // At the end of the input the caret sits just past the last character.
        let e = err("*.*,c=");
        assert!(e.to_string().ends_with("  *.*,c=\n        ^"), "{e}");
    }

    #[test]
    fn serde_uses_the_text_form() {
        let list = FilterList::parse_all(&["*.*,c=security", "kernel,hot=yes"]).unwrap();
        let json = serde_json::to_string(&list).unwrap();
        assert_eq!(json, r#"["*.*,c=security","kernel,hot=true"]"#);
        let back: FilterList = serde_json::from_str(&json).unwrap();
        assert_eq!(back, list);
        assert!(serde_json::from_str::<Filter>(r#""*.*,c>x""#).is_err());
    }

    #[test]
    fn fast_paths_agree_with_the_glob_compiler() {
        for pattern in [
            "abc", "*", "***", "ab*", "*bc", "a*c", "?bc", "[a]bc", "a[!x]*",
        ] {
            let fast = Pattern::compile(pattern, 0).unwrap();
            let slow = GlobBuilder::new(pattern)
                .literal_separator(false)
                .backslash_escape(false)
                .build()
                .unwrap()
                .compile_matcher();
            for s in ["", "abc", "abcc", "xbc", "ab", "bc", "a/bc", "ab/c", "aXc"] {
                assert_eq!(fast.is_match(s), slow.is_match(s), "{pattern} on {s:?}");
            }
        }
    }

    /// Every example in the operator's reference parses.
    #[test]
    fn documented_examples_parse() {
        let doc = include_str!("../../docs/filters.md");
        let examples = doc
            .split("## Examples")
            .nth(1)
            .expect("an Examples section");
        let mut seen = 0;
        for row in examples.lines().filter(|l| l.starts_with("| `")) {
            let cell = row.split("` ").next().unwrap().trim_start_matches("| `");
            let text = cell.replace("\\|", "|");
            f(&text);
            seen += 1;
        }
        assert!(seen >= 8, "only {seen} examples found");
        for block in doc.split("```\n{").skip(1) {
            let body = block.split("```").next().unwrap();
            let list = FilterList::parse_file_text(&format!("{{{body}"))
                .unwrap_or_else(|e| panic!("{body}:\n{e}"));
            assert!(!list.is_empty());
        }
    }
}
