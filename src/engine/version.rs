//! Version strings and their one order.
//!
//! Every place that orders versions — filters (`r>=`), `base_version`,
//! available updates and cluster drift — asks [`compare`], so they can never
//! disagree. The rule comes from seed 003 (components patched to versions,
//! pre-releases before releases) and from SD-UX revision strings (seed 004).
//!
//! The order, for operators, is documented in `docs/filters.md`:
//!
//! - A version splits into fields at `.`, `-`, `_`, `+` and `~`; empty
//!   fields are ignored. Inside a field, a run of ASCII digits and a run of
//!   anything else are separate parts: `beta11` is `beta`, `11`.
//! - A `-` directly followed by a letter starts the pre-release: everything
//!   after it. `10.1.0-rc2` has release `10.1.0` and pre-release `rc`, `2`.
//! - Releases compare first, part by part. Digit runs compare as numbers
//!   (leading zeros ignored, any length), other runs as text (byte order),
//!   and a number sorts before text. A missing part counts as `0`, so
//!   `1.2 == 1.2.0`.
//! - With equal releases, a version without a pre-release sorts after one
//!   with (`10.1.0-rc10 < 10.1.0`); two pre-releases compare part by part
//!   as above.
//!
//! So `10.1.0-beta9 < 10.1.0-beta11 < 10.1.0-rc2 < 10.1.0-rc10 < 10.1.0`.

use std::cmp::Ordering;
use std::fmt;

const SEPARATORS: &[char] = &['.', '-', '_', '+', '~'];

/// One part of a version: a digit run (kept without leading zeros, so a
/// field of any length compares without overflow) or any other run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Part {
    Number(String),
    Text(String),
}

impl Part {
    fn zero() -> Part {
        Part::Number(String::new())
    }
}

impl Ord for Part {
    fn cmp(&self, other: &Part) -> Ordering {
        match (self, other) {
            (Part::Number(a), Part::Number(b)) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
            (Part::Number(_), Part::Text(_)) => Ordering::Less,
            (Part::Text(_), Part::Number(_)) => Ordering::Greater,
            (Part::Text(a), Part::Text(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Part {
    fn partial_cmp(&self, other: &Part) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Number(n) if n.is_empty() => f.write_str("0"),
            Part::Number(n) | Part::Text(n) => f.write_str(n),
        }
    }
}

/// A parsed version. Equality and order are the version order: trailing
/// zero parts do not count (`1.2` equals `1.2.0`).
#[derive(Debug, Clone)]
pub struct Version {
    /// The release parts, in order.
    pub release: Vec<Part>,
    /// The pre-release parts; `None` for a release.
    pub pre: Option<Vec<Part>>,
}

impl Version {
    /// Parses any string; there is no invalid version (an empty string is
    /// the version `0`).
    pub fn parse(text: &str) -> Version {
        let cut = text
            .char_indices()
            .find(|&(i, c)| {
                c == '-'
                    && text
                        .get(i + 1..)
                        .and_then(|rest| rest.chars().next())
                        .is_some_and(|n| n.is_alphabetic())
            })
            .map(|(i, _)| i);
        match cut {
            Some(i) => Version {
                release: parts(text.get(..i).unwrap_or_default()),
                pre: Some(parts(text.get(i + 1..).unwrap_or_default())),
            },
            None => Version {
                release: parts(text),
                pre: None,
            },
        }
    }
}

/// Splits into fields at the separators, and fields into digit and
/// non-digit runs.
fn parts(text: &str) -> Vec<Part> {
    let mut out = Vec::new();
    for field in text.split(SEPARATORS).filter(|f| !f.is_empty()) {
        let mut run = String::new();
        let mut digits = false;
        for c in field.chars() {
            let d = c.is_ascii_digit();
            if !run.is_empty() && d != digits {
                out.push(part(std::mem::take(&mut run), digits));
            }
            digits = d;
            run.push(c);
        }
        if !run.is_empty() {
            out.push(part(run, digits));
        }
    }
    out
}

fn part(run: String, digits: bool) -> Part {
    if digits {
        Part::Number(run.trim_start_matches('0').to_string())
    } else {
        Part::Text(run)
    }
}

/// Compares part lists, a missing part counting as `0` (the smallest part,
/// which keeps the order total and transitive).
fn compare_parts(a: &[Part], b: &[Part]) -> Ordering {
    let zero = Part::zero();
    for i in 0..a.len().max(b.len()) {
        let ord = a.get(i).unwrap_or(&zero).cmp(b.get(i).unwrap_or(&zero));
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        compare_parts(&self.release, &other.release).then_with(|| match (&self.pre, &other.pre) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(a), Some(b)) => compare_parts(a, b),
        })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// The canonical rendering: release parts joined by `.`, then `-` and the
/// pre-release parts joined by `.`; numbers without leading zeros, trailing
/// zero parts kept as given. Parsing the rendering gives an equal version.
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |parts: &[Part]| {
            parts
                .iter()
                .map(Part::to_string)
                .collect::<Vec<_>>()
                .join(".")
        };
        if self.release.is_empty() {
            f.write_str("0")?;
        } else {
            f.write_str(&join(&self.release))?;
        }
        if let Some(pre) = &self.pre {
            // A pre-release always starts with text (a `-` followed by a
            // letter began it); one that does not would read back as release.
            if pre.first().is_some_and(|p| matches!(p, Part::Text(_))) {
                write!(f, "-{}", join(pre))?;
            } else {
                write!(f, "-pre.{}", join(pre))?;
            }
        }
        Ok(())
    }
}

/// Compares two version strings in the version order (see the module docs).
pub fn compare(a: &str, b: &str) -> Ordering {
    Version::parse(a).cmp(&Version::parse(b))
}

/// True when both strings name the same version (`1.2` and `1.02.0` do).
pub fn equal(a: &str, b: &str) -> bool {
    compare(a, b) == Ordering::Equal
}

/// The greatest of `versions` in the version order; the first of equals.
pub fn max<'a>(versions: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    versions.into_iter().fold(None, |best, v| match best {
        Some(b) if compare(v, b) != Ordering::Greater => Some(b),
        _ => Some(v),
    })
}

/// Whether `installed` satisfies a `base_version` constraint list such as
/// `">=10.1, <11"`: comma-separated `OP VERSION` terms, OP one of `>=`,
/// `<=`, `>`, `<`, `==`, `=`, or none (meaning `==`); every term must hold,
/// in the version order of [`compare`]. `None` when the constraint cannot
/// be parsed (an empty term, or a version holding spaces, `<`, `>`, `=`,
/// `!` or `,`). From the manifest's `base_version` (seed 004: patches match
/// what is installed on the target).
pub fn base_version_satisfied(base: &str, installed: &str) -> Option<bool> {
    let mut holds = true;
    for term in base.split(',') {
        let (op, wanted) = base_term(term).ok()?;
        let ord = compare(installed, wanted);
        holds &= match op {
            ">=" => ord.is_ge(),
            "<=" => ord.is_le(),
            ">" => ord.is_gt(),
            "<" => ord.is_lt(),
            _ => ord.is_eq(),
        };
    }
    Some(holds)
}

/// One `OP VERSION` term of a `base_version` list, or what is wrong with it.
fn base_term(term: &str) -> Result<(&'static str, &str), String> {
    let term = term.trim();
    let (op, wanted) = [">=", "<=", "==", ">", "<", "="]
        .iter()
        .find_map(|op| term.strip_prefix(op).map(|rest| (*op, rest.trim())))
        .unwrap_or(("==", term));
    let malformed = |c: char| c.is_whitespace() || matches!(c, '<' | '>' | '=' | '!' | ',');
    if wanted.is_empty() {
        return Err(format!(
            "term {} names no version",
            crate::engine::text::quoted(term)
        ));
    }
    if let Some(c) = wanted.chars().find(|&c| malformed(c)) {
        return Err(format!(
            "term {} has {c:?} in its version",
            crate::engine::text::quoted(term)
        ));
    }
    Ok((op, wanted))
}

/// Whether `base` is a constraint list [`base_version_satisfied`] can
/// read. Errors: which term is wrong and what a list looks like.
pub fn check_base_version(base: &str) -> Result<(), String> {
    for term in base.split(',') {
        base_term(term).map_err(|m| {
            format!(
                "{m}; expected comma-separated terms of an operator (>=, <=, >, <, ==, =) and a version, e.g. \">=10.1, <11\""
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_fields_compare_as_numbers() {
        assert_eq!(compare("1.10", "1.9"), Ordering::Greater);
        assert_eq!(compare("2.0", "10.0"), Ordering::Less);
        assert_eq!(compare("B.11.31", "B.11.23"), Ordering::Greater);
    }

    #[test]
    fn missing_fields_count_as_zero() {
        assert!(equal("1.2", "1.2.0"));
        assert!(equal("1.02", "1.2"));
        assert_eq!(compare("1.2", "1.2.1"), Ordering::Less);
    }

    #[test]
    fn numbers_sort_before_words() {
        assert_eq!(compare("1.0.1", "1.0.beta"), Ordering::Less);
        assert_eq!(compare("1.0-rc1", "1.0-rc2"), Ordering::Less);
    }

    #[test]
    fn huge_fields_do_not_overflow() {
        assert_eq!(
            compare("1.99999999999999999999999", "1.100000000000000000000000"),
            Ordering::Less
        );
    }

    #[test]
    fn pre_releases_sort_before_their_release() {
        let chain = [
            "10.1.0-beta9",
            "10.1.0-beta11",
            "10.1.0-rc2",
            "10.1.0-rc10",
            "10.1.0",
            "10.1.1-alpha1",
            "10.1.1",
            "10.10",
        ];
        for w in chain.windows(2) {
            assert_eq!(compare(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
            assert_eq!(compare(w[1], w[0]), Ordering::Greater);
        }
        assert!(equal("10.1-rc1", "10.1.0-rc.1"));
        // A `-` before a digit is a release field, not a pre-release.
        assert!(equal("1.0-1", "1.0.1"));
        assert_eq!(compare("1.2.3.4.5-rc1", "1.2.3.4.5"), Ordering::Less);
    }

    #[test]
    fn base_version_constraints() {
        assert_eq!(base_version_satisfied(">=10.1", "10.1"), Some(true));
        assert_eq!(base_version_satisfied(">10.1", "10.1"), Some(false));
        assert_eq!(base_version_satisfied(">= 10.0, < 11", "10.9"), Some(true));
        assert_eq!(
            base_version_satisfied(">=10.1.0-beta10", "10.1.0-beta9"),
            Some(false)
        );
        assert_eq!(base_version_satisfied(">=10.1.0-rc1", "10.1.0"), Some(true));
        for bad in ["", ">=", "1.0 2.0", "<<1", ">=1,"] {
            assert_eq!(base_version_satisfied(bad, "1.0"), None, "{bad:?}");
        }
    }

    #[test]
    fn rendering_reads_back_equal() {
        for v in [
            "10.1.0-beta9",
            "007.1",
            "B.11.31",
            "",
            "1.0-1",
            "rc1",
            "1..2",
        ] {
            let parsed = Version::parse(v);
            let shown = parsed.to_string();
            assert!(equal(&shown, v), "{v:?} shown as {shown:?}");
        }
        assert_eq!(max(["1.9", "1.10", "1.10-rc1"]), Some("1.10"));
    }
}
