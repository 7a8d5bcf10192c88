//! Narrowing the lab's history as an operator types it: a filter line of
//! space-separated terms, all of which must hold. `node=ID`, `patch=ID`,
//! `rollout=N`, `op=OP`, `source=S` and `operator=USER` match that field
//! (`operator` and `patch` as a part of it); any other term is a fuzzy
//! match over the whole row, as the depot's search is. Also the whole
//! record of one change, as the console's detail shows it.

use fuzzy_matcher::FuzzyMatcher;
use fuzzy_matcher::skim::SkimMatcherV2;

use crate::engine::journal::Change;

/// One term of the filter line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Field(String, String),
    Fuzzy(String),
}

fn terms(filter: &str) -> Vec<Term> {
    filter
        .split_whitespace()
        .map(|t| match t.split_once('=') {
            Some((k, v))
                if matches!(
                    k,
                    "node" | "patch" | "rollout" | "op" | "source" | "operator"
                ) =>
            {
                Term::Field(k.to_string(), v.to_ascii_lowercase())
            }
            _ => Term::Fuzzy(t.to_string()),
        })
        .collect()
}

/// The text a fuzzy term is matched against.
fn line_of(c: &Change) -> String {
    format!(
        "{} {} {} {} {} {} {}",
        c.time, c.node, c.patch, c.op, c.operator, c.source, c.message
    )
}

/// Indexes into `changes` of the rows the filter keeps, in their order
/// (newest first, as the journal gives them).
pub fn rows(changes: &[Change], filter: &str) -> Vec<usize> {
    let terms = terms(filter);
    let matcher = SkimMatcherV2::default();
    changes
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            terms.iter().all(|t| match t {
                Term::Field(k, v) => match k.as_str() {
                    "node" => c.node.eq_ignore_ascii_case(v),
                    "patch" => c.patch.to_ascii_lowercase().contains(v.as_str()),
                    "rollout" => c.rollout.is_some_and(|r| r.to_string() == *v),
                    "op" => c.op.eq_ignore_ascii_case(v),
                    "source" => c.source.eq_ignore_ascii_case(v),
                    _ => c.operator.to_ascii_lowercase().contains(v.as_str()),
                },
                Term::Fuzzy(q) => matcher.fuzzy_match(&line_of(c), q).is_some(),
            })
        })
        .map(|(i, _)| i)
        .collect()
}

/// The whole record of a change, one field a line, for the detail dialog.
pub fn record(c: &Change) -> Vec<String> {
    let mut lines = vec![
        format!("time      {}", c.time),
        format!("node      {}", c.node),
        format!("patch     {}", c.patch),
        format!("op        {}", c.op),
        format!("ok        {}", if c.ok { "yes" } else { "no" }),
        format!(
            "operator  {}",
            match &c.sudo_user {
                Some(s) => format!("{} (sudo from {s})", c.operator),
                None => c.operator.clone(),
            }
        ),
        format!(
            "source    {}{}",
            c.source,
            c.rollout
                .map(|r| format!(", rollout {r}"))
                .unwrap_or_default()
        ),
    ];
    if !c.command.is_empty() {
        lines.push(format!("command   {}", c.command));
    }
    lines.push(String::new());
    lines.extend(c.message.lines().map(str::to_string));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(node: &str, patch: &str, op: &str, operator: &str, rollout: Option<i64>) -> Change {
        Change {
            time: "2026-11-29T20:01:02Z".into(),
            operator: operator.into(),
            sudo_user: None,
            source: "cli".into(),
            rollout,
            node: node.into(),
            patch: patch.into(),
            op: op.into(),
            ok: true,
            message: format!("{op} {patch} on {node}"),
            command: String::new(),
        }
    }

    #[test]
    fn field_terms_and_fuzzy_terms_all_hold() {
        let changes = vec![
            change("edge-1_1", "KRN_1001", "install", "ann@ops1", Some(3)),
            change("edge-1_2", "KRN_1001", "rollback", "bob@ops2", None),
            change("gw-east-1", "GW_1021", "stage", "ann@ops1", None),
        ];
        assert_eq!(rows(&changes, ""), [0, 1, 2]);
        assert_eq!(rows(&changes, "node=edge-1_2"), [1]);
        assert_eq!(rows(&changes, "operator=ann"), [0, 2]);
        assert_eq!(rows(&changes, "rollout=3"), [0]);
        assert_eq!(rows(&changes, "patch=krn op=install"), [0]);
        assert_eq!(rows(&changes, "gwest"), [2]);
        assert_eq!(rows(&changes, "operator=ann krn"), [0]);
        assert!(rows(&changes, "node=nowhere").is_empty());
    }
}
