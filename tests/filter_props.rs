//! Property tests for the filter language: canonical text round-trips,
//! the parser never panics, and list semantics are "any filter matches".

use chrono::NaiveDate;
use patchdeck::engine::filter::{Filter, FilterList};
use patchdeck::engine::manifest::{Manifest, Restart, Severity};
use patchdeck::engine::patch::Patch;
use proptest::prelude::*;
use proptest::sample::select;

// ---------------------------------------------------------------------------
// Filter text from the grammar

/// Optional spaces, which the parser tolerates around `,`, `|` and operators.
fn sp() -> impl Strategy<Value = &'static str> {
    select(vec!["", "", "", " ", "  "])
}

/// A shell glob over a small alphabet, so generated filters often match
/// generated patches.
fn glob() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[a-c]{1,2}",
        2 => Just("*".to_string()),
        1 => Just("?".to_string()),
        1 => "\\[!?[a-c]{1,2}\\]",
        1 => Just("[a-b]".to_string()),
        1 => Just("[]a]".to_string()),
    ];
    prop::collection::vec(piece, 1..4).prop_map(|pieces| pieces.concat())
}

/// A plain name (no glob characters).
fn name() -> impl Strategy<Value = String> {
    "[a-c][a-c_0-9]{0,3}"
}

fn version() -> impl Strategy<Value = String> {
    "[0-9]{1,2}(\\.[0-9]{1,2}){0,2}"
}

fn date() -> impl Strategy<Value = String> {
    (1990i32..2100, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}"))
}

/// Values joined by `|`, with optional spaces around each bar.
fn alternatives(values: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    prop::collection::vec((values, sp(), sp()), 1..4).prop_map(|vs| {
        let mut out = String::new();
        for (i, (v, before, after)) in vs.into_iter().enumerate() {
            if i > 0 {
                out.push_str(before);
                out.push('|');
                out.push_str(after);
            }
            out.push_str(&v);
        }
        out
    })
}

/// One valid qualifier: a key, an operator it allows, and suitable values.
fn qualifier() -> impl Strategy<Value = String> {
    let text_key = select(vec!["r", "a", "v", "c", "id"]);
    let ordering = select(vec![">=", "<=", "<", ">", "==", "=", "!="]);
    let severity =
        select(vec!["low", "medium", "high", "critical", "HIGH", "Low"]).prop_map(str::to_string);
    let restart = select(vec!["none", "service", "reboot", "Reboot"]).prop_map(str::to_string);
    let hot = select(vec!["true", "false", "yes", "no", "TRUE"]).prop_map(str::to_string);
    let parts = prop_oneof![
        // Globs for the text keys.
        (
            text_key.clone(),
            select(vec!["=", "!="]),
            alternatives(glob())
        )
            .prop_map(|(k, o, v)| (k.to_string(), o.to_string(), v)),
        // Exact text.
        (text_key, alternatives(name())).prop_map(|(k, v)| (k.to_string(), "==".into(), v)),
        // Versions: exact or ordered.
        (
            select(vec![">=", "<=", "<", ">", "=="]),
            alternatives(version())
        )
            .prop_map(|(o, v)| ("r".into(), o.to_string(), v)),
        (ordering.clone(), alternatives(severity)).prop_map(|(o, v)| (
            "sev".into(),
            o.to_string(),
            v
        )),
        (ordering.clone(), alternatives(restart)).prop_map(|(o, v)| (
            "restart".into(),
            o.to_string(),
            v
        )),
        (ordering, alternatives(date())).prop_map(|(o, v)| ("d".into(), o.to_string(), v)),
        (select(vec!["=", "==", "!="]), alternatives(hot)).prop_map(|(o, v)| (
            "hot".into(),
            o.to_string(),
            v
        )),
    ];
    (parts, sp(), sp()).prop_map(|((k, o, v), a, b)| format!("{k}{a}{o}{b}{v}"))
}

/// A valid filter text, possibly with tolerated spaces.
fn filter_text() -> impl Strategy<Value = String> {
    (
        glob(),
        prop::option::of(glob()),
        prop::collection::vec((qualifier(), sp(), sp()), 0..4),
        sp(),
        sp(),
    )
        .prop_map(|(product, fileset, qualifiers, lead, trail)| {
            let mut text = format!("{lead}{product}");
            if let Some(fileset) = fileset {
                text.push('.');
                text.push_str(&fileset);
            }
            for (q, before, after) in qualifiers {
                text.push_str(before);
                text.push(',');
                text.push_str(after);
                text.push_str(&q);
            }
            text.push_str(trail);
            text
        })
}

fn filter() -> impl Strategy<Value = Filter> {
    filter_text().prop_map(|t| {
        Filter::parse(&t).unwrap_or_else(|e| panic!("generated filter {t:?} should parse:\n{e}"))
    })
}

// ---------------------------------------------------------------------------
// Patches

fn patch() -> impl Strategy<Value = Patch> {
    let words = || select(vec!["a", "b", "c", "ab", "ba", "abc", "c_1", "]a"]);
    (
        (
            words(),
            prop::option::of(words()),
            version(),
            words(),
            words(),
            prop::collection::vec(words(), 0..3),
        ),
        (
            select(Severity::ALL.to_vec()),
            select(Restart::ALL.to_vec()),
            any::<bool>(),
            date(),
            words(),
        ),
    )
        .prop_map(
            |(
                (product, fileset, version, vendor, arch, categories),
                (sev, restart, hot, d, id),
            )| {
                let manifest = Manifest {
                    id: None,
                    title: "generated".into(),
                    description: String::new(),
                    product: product.into(),
                    fileset: fileset.map(str::to_string),
                    version,
                    vendor: vendor.into(),
                    arch: arch.into(),
                    categories: categories.iter().map(|c| c.to_string()).collect(),
                    severity: sev,
                    released: NaiveDate::parse_from_str(&d, "%Y-%m-%d").unwrap(),
                    supersedes: vec![],
                    requires: vec![],
                    restart,
                    hot,
                    kernel: false,
                    base_version: None,
                    files: vec![],
                };
                Patch::new(id.to_string(), format!("{id}.patch"), manifest)
            },
        )
}

// ---------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn display_round_trips(text in filter_text()) {
        let f = Filter::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}:\n{e}")))?;
        let shown = f.to_string();
        let again = Filter::parse(&shown)
            .map_err(|e| TestCaseError::fail(format!("display {shown:?} of {text:?}:\n{e}")))?;
        prop_assert_eq!(&again, &f, "display {:?} of {:?}", shown, text);
        prop_assert_eq!(again.to_string(), shown);
        prop_assert!(!f.to_string().contains(' '), "canonical text has no spaces");
    }

    #[test]
    fn displayed_filter_matches_the_same_patches(f in filter(), p in patch()) {
        let again = Filter::parse(&f.to_string()).unwrap();
        prop_assert_eq!(again.matches(&p), f.matches(&p));
    }

    #[test]
    fn parse_never_panics_on_arbitrary_text(text in any::<String>()) {
        check_no_panic(&text);
    }

    #[test]
    fn parse_never_panics_on_filter_alphabet(text in "[a-z*.,=<>!|?\\[\\]{}# \n\t-]{0,40}") {
        check_no_panic(&text);
    }

    #[test]
    fn parse_never_panics_on_mangled_filters(text in filter_text(), cut in any::<prop::sample::Index>(), junk in "[a-z*.,=<>!|?\\[\\]{}# é-]{0,3}") {
        // Insert junk somewhere into an otherwise valid filter.
        let chars: Vec<char> = text.chars().collect();
        let at = cut.index(chars.len() + 1);
        let mangled: String = chars[..at].iter().copied().chain(junk.chars()).chain(chars[at..].iter().copied()).collect();
        check_no_panic(&mangled);
    }

    #[test]
    fn list_matches_iff_any_filter_matches(filters in prop::collection::vec(filter(), 0..5), p in patch()) {
        let list = FilterList::new(filters.clone());
        let any = filters.iter().any(|f| f.matches(&p));
        prop_assert_eq!(list.matches(&p), any || filters.is_empty());
        prop_assert_eq!(list.is_empty(), filters.is_empty());
        // The list's text reads back, as a filter file, to the same list.
        let text = list.to_string();
        let back = FilterList::parse_file_text(&text)
            .map_err(|e| TestCaseError::fail(format!("{text:?}:\n{e}")))?;
        prop_assert_eq!(&back, &list);
        let braced = FilterList::parse_file_text(&format!("{{\n{}\n}}\n", text.replace(' ', "\n  "))).unwrap();
        prop_assert_eq!(&braced, &list);
    }

    #[test]
    fn not_match_is_the_negation_of_match(
        key in select(vec!["r", "a", "v", "c", "id"]),
        values in alternatives(glob()),
        p in patch(),
    ) {
        let positive = Filter::parse(&format!("*,{key}={values}")).unwrap();
        let negative = Filter::parse(&format!("*,{key}!={values}")).unwrap();
        prop_assert_eq!(negative.matches(&p), !positive.matches(&p));
    }

    #[test]
    fn repetition_is_conjunction(a in qualifier(), b in qualifier(), p in patch()) {
        let both = Filter::parse(&format!("*,{a},{b}")).unwrap();
        let first = Filter::parse(&format!("*,{a}")).unwrap();
        let second = Filter::parse(&format!("*,{b}")).unwrap();
        prop_assert_eq!(both.matches(&p), first.matches(&p) && second.matches(&p));
    }
}

fn check_no_panic(text: &str) {
    if let Err(e) = Filter::parse(text) {
        check_error(text, &e);
    }
    if let Err(e) = FilterList::parse_file_text(text) {
        check_error(text, &e);
    }
}

/// Errors point inside (or just past) the text they quote.
fn check_error(text: &str, e: &patchdeck::engine::filter::FilterError) {
    let shown = e.to_string();
    assert!(e.column >= 1, "{text:?}: {shown}");
    assert!(
        e.column <= e.input.chars().count() + 1,
        "{text:?}: column {} past the input:\n{shown}",
        e.column
    );
    assert!(
        text.contains(&e.input),
        "{text:?}: quoted input is not from the text:\n{shown}"
    );
    assert!(!e.message.is_empty());
}
