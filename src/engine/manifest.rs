//! The patch manifest (`PATCH.toml`): its fields, parsing with line-accurate
//! errors, and the checks that do not need the rest of the depot.
//!
//! The format is documented in `docs/patch-format.md`; field names are part of
//! that promise.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How bad the problem a patch fixes is. Orders from `Low` to `Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What has to be restarted once a patch is installed. Orders by disruption.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Restart {
    #[default]
    None,
    Service,
    Reboot,
}

impl Restart {
    pub const ALL: [Restart; 3] = [Self::None, Self::Service, Self::Reboot];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Service => "service",
            Self::Reboot => "reboot",
        }
    }
}

impl fmt::Display for Restart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One payload file: where it goes (relative to the node root), and what it
/// must hash to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
    pub size: u64,
    #[serde(
        default = "default_mode",
        serialize_with = "ser_mode",
        deserialize_with = "de_mode"
    )]
    pub mode: u32,
}

fn default_mode() -> u32 {
    0o644
}

/// The parsed `PATCH.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub product: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fileset: Option<String>,
    pub version: String,
    #[serde(default)]
    pub vendor: String,
    #[serde(default = "default_arch")]
    pub arch: String,
    #[serde(default)]
    pub categories: Vec<String>,
    pub severity: Severity,
    #[serde(serialize_with = "ser_date", deserialize_with = "de_date")]
    pub released: chrono::NaiveDate,
    #[serde(default)]
    pub supersedes: Vec<String>,
    #[serde(default)]
    pub requires: Vec<String>,
    #[serde(default)]
    pub restart: Restart,
    #[serde(default)]
    pub hot: bool,
    #[serde(default)]
    pub kernel: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_version: Option<String>,
    #[serde(default)]
    pub files: Vec<FileEntry>,
}

fn default_arch() -> String {
    "any".to_string()
}

/// A problem with a manifest, located where possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// 1-based line in `PATCH.toml`, when the problem has one.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "PATCH.toml line {line}: {}", self.message),
            None => write!(f, "PATCH.toml: {}", self.message),
        }
    }
}

impl std::error::Error for ManifestError {}

impl Manifest {
    /// Parses and checks a manifest on its own (the id/stem match and
    /// cross-patch rules are the depot's business).
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Self::parse_as(text, None)
    }

    /// [`Manifest::parse`] for the patch whose id is `id` (its file name's
    /// stem, when the manifest itself names none): `requires` and
    /// `supersedes` must not name that id either.
    ///
    /// Errors: [`ManifestError`] with the line of the offending value.
    pub fn parse_as(text: &str, id: Option<&str>) -> Result<Manifest, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError {
            line: e
                .span()
                .map(|s| crate::engine::tomlspan::line_of(text, s.start)),
            message: crate::engine::text::cap_pieces(e.message().trim()).into_owned(),
        })?;
        manifest.check(id).map_err(|(message, at)| ManifestError {
            line: at.and_then(|at| at.line(text)),
            message,
        })?;
        Ok(manifest)
    }

    /// Renders the manifest as TOML (used by `pack` and the demo generator).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a manifest always serialises")
    }

    /// Field-level checks that serde cannot express. On failure returns the
    /// message and the value it concerns, so the caller can find its line.
    /// `own` is the patch's id when known from outside (its file name).
    fn check(&self, own: Option<&str>) -> Result<(), (String, Option<At>)> {
        use At::{File, Item, Key};
        let q = crate::engine::text::quoted;
        if let Some(id) = &self.id {
            check_id(id).map_err(|m| (m, Some(Key("id"))))?;
        }
        let own = self.id.as_deref().or(own);
        for (key, value) in [
            ("title", &self.title),
            ("product", &self.product),
            ("version", &self.version),
        ] {
            if value.trim().is_empty() {
                return Err((format!("`{key}` must not be empty"), Some(Key(key))));
            }
        }
        check_name(&self.product, true)
            .map_err(|m| (format!("`product`: {m}"), Some(Key("product"))))?;
        if let Some(fileset) = &self.fileset {
            check_name(fileset, true)
                .map_err(|m| (format!("`fileset`: {m}"), Some(Key("fileset"))))?;
        }
        for (i, tag) in self.categories.iter().enumerate() {
            check_name(tag, false).map_err(|m| {
                (
                    format!("category {}: {m}", q(tag)),
                    Some(Item("categories", i)),
                )
            })?;
        }
        for (key, ids) in [
            ("supersedes", &self.supersedes),
            ("requires", &self.requires),
        ] {
            for (i, id) in ids.iter().enumerate() {
                check_id(id).map_err(|m| (format!("`{key}`: {m}"), Some(Item(key, i))))?;
                if Some(id.as_str()) == own {
                    return Err((
                        format!(
                            "`{key}` names the patch itself ({id}); expected ids of other patches"
                        ),
                        Some(Item(key, i)),
                    ));
                }
            }
        }
        if let Some(base) = &self.base_version {
            crate::engine::version::check_base_version(base).map_err(|m| {
                (
                    format!("`base_version` {}: {m}", q(base)),
                    Some(Key("base_version")),
                )
            })?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, file) in self.files.iter().enumerate() {
            check_payload_path(&file.path).map_err(|m| (m, Some(File(i, "path"))))?;
            if !seen.insert(file.path.as_str()) {
                return Err((
                    format!("payload file {} is listed twice", q(&file.path)),
                    Some(File(i, "path")),
                ));
            }
            if file.sha256.len() != 64 || !file.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err((
                    format!(
                        "payload file {}: sha256 must be 64 hex digits",
                        q(&file.path)
                    ),
                    Some(File(i, "sha256")),
                ));
            }
            if file.mode > 0o7777 {
                return Err((
                    format!(
                        "payload file {}: mode {:o} is not a permission mode",
                        q(&file.path),
                        file.mode
                    ),
                    Some(File(i, "mode")),
                ));
            }
        }
        Ok(())
    }
}

/// Which value of a manifest a check failed on, to find its line.
#[derive(Debug, Clone, Copy)]
enum At {
    /// A top-level key.
    Key(&'static str),
    /// An element of a top-level array.
    Item(&'static str, usize),
    /// A key of the n-th `[[files]]` table.
    File(usize, &'static str),
}

impl At {
    fn line(self, text: &str) -> Option<usize> {
        use crate::engine::tomlspan::{Seg, line_at};
        let key = match self {
            At::Key(k) | At::Item(k, _) => k,
            At::File(..) => "files",
        };
        let exact = match self {
            At::Key(k) => line_at(text, &[Seg::Key(k)]),
            At::Item(k, i) => line_at(text, &[Seg::Key(k), Seg::Index(i)]),
            At::File(i, k) => line_at(text, &[Seg::Key("files"), Seg::Index(i), Seg::Key(k)]),
        };
        exact.or_else(|| line_of_key(text, key))
    }
}

/// A patch id: the file stem of `ID.patch`, so it must be a safe file name.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 128 {
        return Err(format!(
            "patch id {} must be 1 to 128 characters",
            crate::engine::text::quoted(id)
        ));
    }
    if id.starts_with(['.', '-']) {
        return Err(format!(
            "patch id {} must not start with '.' or '-'",
            crate::engine::text::quoted(id)
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+')))
    {
        return Err(format!(
            "patch id {} contains {c:?}; expected letters, digits, '_', '-', '.', '+'",
            crate::engine::text::quoted(id)
        ));
    }
    Ok(())
}

/// Product, fileset and category names: no separators the filter language
/// uses (`.` separates product from fileset, so those two may not hold one).
fn check_name(name: &str, no_dot: bool) -> Result<(), String> {
    let reserved = |c: &char| {
        matches!(
            c,
            ',' | '|' | '=' | '<' | '>' | '!' | '*' | '?' | '[' | ']' | '{' | '}'
        ) || c.is_whitespace()
            || (no_dot && *c == '.')
    };
    match name.chars().find(reserved) {
        Some(c) => Err(format!(
            "{} contains {c:?}, which the filter language reserves",
            crate::engine::text::quoted(name)
        )),
        None if name.is_empty() => Err("must not be empty".to_string()),
        None => Ok(()),
    }
}

/// A payload path must stay inside the node root: relative, no `..`, no
/// empty or `.` components, no backslashes or NUL.
pub fn check_payload_path(path: &str) -> Result<(), String> {
    let shown = crate::engine::text::quoted(path);
    let path_q = shown.as_str();
    if path.is_empty() {
        return Err("payload path is empty".to_string());
    }
    if path.starts_with('/') {
        return Err(format!(
            "payload path {path_q} is absolute; expected a path relative to the node root"
        ));
    }
    if path.contains('\\') || path.contains('\0') {
        return Err(format!("payload path {path_q} contains a backslash or NUL"));
    }
    for component in path.split('/') {
        match component {
            ".." => return Err(format!("payload path {path_q} contains '..'")),
            "" | "." => {
                return Err(format!(
                    "payload path {path_q} has an empty or '.' component"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Line of the first `key =` assignment, for errors found after parsing.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

fn ser_mode<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{mode:04o}"))
}

/// Accepts `mode = "0644"` (octal text, as `pack` writes) or `mode = 0o644`.
fn de_mode<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Mode {
        Int(u32),
        Text(String),
    }
    match Mode::deserialize(d)? {
        Mode::Int(n) => Ok(n),
        Mode::Text(t) => u32::from_str_radix(t.trim_start_matches("0o"), 8).map_err(|_| {
            serde::de::Error::custom(format!("mode {t:?} is not an octal number like \"0644\""))
        }),
    }
}

fn ser_date<S: Serializer>(date: &chrono::NaiveDate, s: S) -> Result<S::Ok, S::Error> {
    let d = toml::value::Date {
        year: date.format("%Y").to_string().parse().unwrap_or(1970),
        month: date.format("%m").to_string().parse().unwrap_or(1),
        day: date.format("%d").to_string().parse().unwrap_or(1),
    };
    toml::value::Datetime {
        date: Some(d),
        time: None,
        offset: None,
    }
    .serialize(s)
}

/// Accepts a TOML date (`released = 2026-03-01`) or the same as a string.
fn de_date<'de, D: Deserializer<'de>>(d: D) -> Result<chrono::NaiveDate, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Date {
        Toml(toml::value::Datetime),
        Text(String),
    }
    let text = match Date::deserialize(d)? {
        Date::Toml(dt) => dt.to_string(),
        Date::Text(t) => t,
    };
    chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|_| {
        serde::de::Error::custom(format!("released {text:?} is not a date like 2026-03-01"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
title = "Fix a leak"
product = "gateway"
fileset = "core"
version = "10.1.3"
vendor = "acme"
categories = ["security"]
severity = "high"
released = 2026-03-01

[[files]]
path = "opt/gw/lib/core.so"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
size = 10
mode = "0755"
"#;

    #[test]
    fn parses_a_good_manifest() {
        let m = Manifest::parse(GOOD).unwrap();
        assert_eq!(m.product, "gateway");
        assert_eq!(m.files[0].mode, 0o755);
        assert_eq!(m.released.to_string(), "2026-03-01");
        assert_eq!(m.restart, Restart::None);
    }

    #[test]
    fn round_trips_through_toml() {
        let m = Manifest::parse(GOOD).unwrap();
        assert_eq!(Manifest::parse(&m.to_toml()).unwrap(), m);
    }

    #[test]
    fn missing_field_is_named() {
        let err = Manifest::parse("title = \"x\"\nproduct = \"p\"\n").unwrap_err();
        assert!(err.message.contains("version"), "{err}");
    }

    #[test]
    fn bad_value_names_its_line() {
        let text = GOOD.replace("severity = \"high\"", "severity = \"urgent\"");
        let err = Manifest::parse(&text).unwrap_err();
        assert_eq!(err.line, Some(8), "{err}");
        assert!(
            err.message.contains("critical"),
            "lists what was expected: {err}"
        );
    }

    #[test]
    fn a_self_requirement_and_a_bad_base_version_name_their_line() {
        let text = GOOD.replace(
            "severity = \"high\"",
            "severity = \"high\"\nrequires = [\"GW_1\"]",
        );
        let err = Manifest::parse_as(&text, Some("GW_1")).unwrap_err();
        assert_eq!(err.line, Some(9), "{err}");
        assert!(err.message.contains("itself"), "{err}");
        assert!(Manifest::parse_as(&text, Some("GW_2")).is_ok());
        let text = GOOD.replace(
            "severity = \"high\"",
            "severity = \"high\"\nbase_version = \">=>10\"",
        );
        let err = Manifest::parse(&text).unwrap_err();
        assert_eq!(err.line, Some(9), "{err}");
        assert!(err.message.contains("base_version"), "{err}");
    }

    #[test]
    fn unsafe_payload_paths_are_refused() {
        for bad in ["/etc/passwd", "../x", "a/../../b", "a//b", "./a"] {
            let text = GOOD.replace("opt/gw/lib/core.so", bad);
            let err = Manifest::parse(&text).unwrap_err();
            assert!(err.message.contains("payload path"), "{bad}: {err}");
            assert_eq!(err.line, Some(12), "{bad}: {err}");
        }
    }
}
