//! A parsed filter's structure (keys, operators, values, qualifiers) and
//! how it is evaluated against a patch, without allocating.

use std::cmp::Ordering;
use std::fmt;

use chrono::{Datelike, NaiveDate};

use super::pattern::Pattern;
use crate::engine::manifest::{Restart, Severity};
use crate::engine::patch::Patch;
use crate::engine::version;

/// The qualifier keys, as listed in error messages.
pub(super) const KEYS: &str = "r, a, v, c, id, sev, d, hot, restart";
/// The operators, as listed in error messages.
pub(super) const OPERATORS: &str = "=, !=, ==, >=, <=, <, >";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
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
    pub(super) fn from_name(name: &str) -> Option<Key> {
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

    pub(super) fn name(self) -> &'static str {
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
    pub(super) fn is_text(self) -> bool {
        matches!(
            self,
            Key::Version | Key::Arch | Key::Vendor | Key::Category | Key::Id
        )
    }

    /// Keys that `<`, `<=`, `>=` and `>` can compare.
    pub(super) fn is_ordered(self) -> bool {
        matches!(
            self,
            Key::Version | Key::Date | Key::Severity | Key::Restart
        )
    }

    /// The text a text key looks at (categories are handled separately).
    pub(super) fn text(self, patch: &Patch) -> &str {
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
pub(super) enum Op {
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
    pub(super) fn as_str(self) -> &'static str {
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

    pub(super) fn is_ordering(self) -> bool {
        matches!(
            self,
            Op::Less | Op::LessEqual | Op::Greater | Op::GreaterEqual
        )
    }

    /// Whether `actual.cmp(value)` satisfies the operator. `!=` tests
    /// equality here; the caller negates the combined result.
    pub(super) fn accepts(self, ord: Ordering) -> bool {
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
pub(super) enum Values {
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
pub(super) struct Qualifier {
    pub(super) key: Key,
    pub(super) op: Op,
    pub(super) values: Values,
    /// For `c=`/`c!=`: some value matches the built-in `patch` category, so
    /// every patch has a matching category. Derived from `values`.
    pub(super) builtin: bool,
}

impl Qualifier {
    pub(super) fn matches(&self, patch: &Patch) -> bool {
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
    pub(super) product: Pattern,
    pub(super) fileset: Option<Pattern>,
    pub(super) qualifiers: Vec<Qualifier>,
}

impl Filter {
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

/// Several filters; a patch matches when any one of them does. The empty
/// list (the default) matches every patch.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct FilterList {
    pub(super) filters: Vec<Filter>,
}

impl FilterList {
    pub fn new(filters: Vec<Filter>) -> FilterList {
        FilterList { filters }
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
