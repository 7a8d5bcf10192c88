//! Property tests for the one version order (`engine::version`): it is a
//! total order (antisymmetric, transitive), it agrees with a model built
//! from the parts a version was written from, and the canonical rendering
//! reads back equal and in the same place. Filters and `base_version` use
//! the same comparator, checked here through them.

use std::cmp::Ordering;

use patchdeck::engine::version::{self, Version};
use proptest::prelude::*;
use proptest::sample::select;

/// A model part: numbers sort before words, a missing part is `0`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Model {
    N(u64),
    W(String),
}

fn model_cmp(a: &[Model], b: &[Model]) -> Ordering {
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).cloned().unwrap_or(Model::N(0));
        let y = b.get(i).cloned().unwrap_or(Model::N(0));
        match x.cmp(&y) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    Ordering::Equal
}

/// A version as written: release parts, optional pre-release parts
/// (starting with a word), and the text with random separators and zero
/// padding.
#[derive(Debug, Clone)]
struct Written {
    release: Vec<Model>,
    pre: Option<Vec<Model>>,
    text: String,
}

fn word() -> impl Strategy<Value = String> {
    select(vec!["a", "alpha", "b", "beta", "rc", "pre", "x"]).prop_map(String::from)
}

fn release_sep() -> impl Strategy<Value = &'static str> {
    select(vec![".", ".", ".", "_", "+", "~"])
}

fn pre_sep() -> impl Strategy<Value = &'static str> {
    select(vec![".", "", "-", "_", "+"])
}

fn number() -> impl Strategy<Value = (u64, String)> {
    (0u64..30, select(vec!["", "", "", "0", "00"])).prop_map(|(n, pad)| (n, format!("{pad}{n}")))
}

fn written() -> impl Strategy<Value = Written> {
    let release = prop::collection::vec((number(), release_sep()), 1..6);
    let pre = prop::option::of((
        word(),
        prop::collection::vec(
            prop_oneof![
                number().prop_map(|(n, t)| (Model::N(n), t)),
                word().prop_map(|w| (Model::W(w.clone()), w)),
            ],
            0..3,
        ),
        prop::collection::vec(pre_sep(), 3),
    ));
    (release, pre).prop_map(|(release, pre)| {
        let mut text = String::new();
        let mut model = Vec::new();
        for (i, ((n, t), sep)) in release.into_iter().enumerate() {
            if i > 0 {
                text.push_str(sep);
            }
            text.push_str(&t);
            model.push(Model::N(n));
        }
        let pre = pre.map(|(first, rest, seps)| {
            text.push('-');
            text.push_str(&first);
            let mut parts = vec![Model::W(first)];
            let mut last_word = true;
            for (i, (m, t)) in rest.into_iter().enumerate() {
                let is_word = matches!(m, Model::W(_));
                // Two words (or two numbers) side by side would merge into
                // one run: separate them.
                let sep = seps.get(i).copied().unwrap_or(".");
                let sep = if sep.is_empty() && is_word == last_word {
                    "."
                } else {
                    sep
                };
                text.push_str(sep);
                text.push_str(&t);
                last_word = is_word;
                parts.push(m);
            }
            parts
        });
        Written {
            release: model,
            pre,
            text,
        }
    })
}

fn model_order(a: &Written, b: &Written) -> Ordering {
    model_cmp(&a.release, &b.release).then_with(|| match (&a.pre, &b.pre) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => model_cmp(x, y),
    })
}

/// Any text at all, including the separators and odd characters.
fn any_text() -> impl Strategy<Value = String> {
    "[0-9a-cA-C.\\-_+~!]{0,12}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn agrees_with_the_model(a in written(), b in written()) {
        prop_assert_eq!(
            version::compare(&a.text, &b.text),
            model_order(&a, &b),
            "{} vs {}", a.text, b.text
        );
    }

    #[test]
    fn antisymmetric_and_reflexive(a in any_text(), b in any_text()) {
        prop_assert_eq!(version::compare(&a, &a), Ordering::Equal);
        prop_assert_eq!(version::compare(&a, &b), version::compare(&b, &a).reverse());
    }

    #[test]
    fn transitive(a in any_text(), b in any_text(), c in any_text()) {
        let mut v = [a, b, c];
        v.sort_by(|x, y| version::compare(x, y));
        prop_assert!(version::compare(&v[0], &v[1]).is_le());
        prop_assert!(version::compare(&v[1], &v[2]).is_le());
        prop_assert!(version::compare(&v[0], &v[2]).is_le(), "{:?}", v);
    }

    #[test]
    fn transitive_on_written_versions(a in written(), b in written(), c in written()) {
        let (x, y, z) = (&a.text, &b.text, &c.text);
        if version::compare(x, y).is_le() && version::compare(y, z).is_le() {
            prop_assert!(version::compare(x, z).is_le(), "{} {} {}", x, y, z);
        }
        if version::equal(x, y) && version::equal(y, z) {
            prop_assert!(version::equal(x, z));
        }
    }

    #[test]
    fn rendering_reads_back_in_the_same_place(a in any_text(), b in any_text()) {
        let shown = Version::parse(&a).to_string();
        prop_assert!(version::equal(&shown, &a), "{:?} shown as {:?}", a, shown);
        prop_assert_eq!(version::compare(&shown, &b), version::compare(&a, &b));
        // Rendering is canonical: rendering twice changes nothing.
        prop_assert_eq!(Version::parse(&shown).to_string(), shown);
    }

    #[test]
    fn filters_and_base_version_use_the_same_order(a in written(), b in written()) {
        let ord = version::compare(&a.text, &b.text);
        let constraint = format!(">={}", b.text);
        prop_assert_eq!(
            version::base_version_satisfied(&constraint, &a.text),
            Some(ord.is_ge())
        );
        let filter = patchdeck::engine::filter::Filter::parse(&format!("*,r<{}", b.text));
        if let Ok(filter) = filter {
            let patch = patch_with_version(&a.text);
            prop_assert_eq!(filter.matches(&patch), ord.is_lt(), "{} < {}", a.text, b.text);
        }
    }
}

fn patch_with_version(v: &str) -> patchdeck::engine::patch::Patch {
    let text = format!(
        "title = \"t\"\nproduct = \"p\"\nversion = \"{v}\"\nseverity = \"low\"\nreleased = 2026-01-01\n"
    );
    let manifest = patchdeck::engine::manifest::Manifest::parse(&text).expect("manifest");
    patchdeck::engine::patch::Patch::new("P_1".into(), "P_1.patch".into(), manifest)
}

#[test]
fn the_issue_chain_is_in_order() {
    let chain = [
        "10.1.0-beta9",
        "10.1.0-beta11",
        "10.1.0-rc2",
        "10.1.0-rc10",
        "10.1.0",
    ];
    for (i, a) in chain.iter().enumerate() {
        for (j, b) in chain.iter().enumerate() {
            assert_eq!(version::compare(a, b), i.cmp(&j), "{a} vs {b}");
        }
    }
}
