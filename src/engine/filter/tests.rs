//! Tests of the filter language: parsing, errors and evaluation.

use chrono::NaiveDate;
use globset::GlobBuilder;

use crate::engine::manifest::{Restart, Severity};
use crate::engine::patch::Patch;

use super::error::FilterError;
use super::model::{Filter, FilterList, KEYS};
use super::pattern::Pattern;

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
    let doc = include_str!("../../../docs/filters.md");
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
