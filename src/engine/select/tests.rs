//! Tests of the resolver.

use std::collections::BTreeMap;

use super::request::{ProblemKind, Reason, Request, Selection};
use super::resolver::resolve;
use crate::engine::inventory::Inventory;
use crate::engine::inventory::PatchState;
use crate::engine::manifest::{Manifest, Restart, Severity};
use crate::engine::patch::Patch;
use crate::engine::version::base_version_satisfied;

fn day(d: u32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Days::new(d as u64)
}

fn patch(id: &str, product: &str, released: u32) -> Patch {
    let manifest = Manifest {
        id: None,
        title: format!("patch {id}"),
        description: String::new(),
        product: product.to_string(),
        fileset: None,
        // Above every version the test inventories hold: no fixture is a
        // downgrade unless a test says so.
        version: "99.0".to_string(),
        vendor: String::new(),
        arch: "any".to_string(),
        categories: Vec::new(),
        severity: Severity::Medium,
        released: day(released),
        supersedes: Vec::new(),
        requires: Vec::new(),
        restart: Restart::None,
        hot: false,
        kernel: false,
        base_version: None,
        files: Vec::new(),
    };
    Patch::new(id.to_string(), format!("{id}.patch"), manifest)
}

fn with(mut p: Patch, f: impl FnOnce(&mut Manifest)) -> Patch {
    f(&mut p.manifest);
    p
}

fn sup(p: Patch, ids: &[&str]) -> Patch {
    with(p, |m| {
        m.supersedes = ids.iter().map(|s| s.to_string()).collect()
    })
}

fn req(p: Patch, ids: &[&str]) -> Patch {
    with(p, |m| {
        m.requires = ids.iter().map(|s| s.to_string()).collect()
    })
}

fn specs(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn named(patches: &[Patch], names: &[&str]) -> Selection {
    resolve(patches, &Request::new(specs(names)))
}

fn ids(sel: &Selection) -> Vec<&str> {
    sel.patches.iter().map(|p| p.id.as_str()).collect()
}

fn reason<'s>(sel: &'s Selection, id: &str) -> &'s str {
    &sel.patches.iter().find(|p| p.id == id).unwrap().reason
}

fn kinds(sel: &Selection) -> Vec<ProblemKind> {
    sel.problems.iter().map(|p| p.kind).collect()
}

fn dropped(sel: &Selection) -> Vec<(&str, &str)> {
    sel.dropped
        .iter()
        .map(|d| (d.id.as_str(), d.superseded_by.as_str()))
        .collect()
}

fn inventory(node: &str, products: &[(&str, &str)], patches: &[(&str, PatchState)]) -> Inventory {
    Inventory {
        node: node.to_string(),
        products: products
            .iter()
            .map(|(p, v)| (p.to_string(), v.to_string()))
            .collect(),
        components: BTreeMap::new(),
        patches: patches.iter().map(|(p, s)| (p.to_string(), *s)).collect(),
    }
}

#[test]
fn explicit_ids_are_selected_in_the_order_named() {
    let depot = [
        patch("A", "x11", 1),
        patch("B", "x11", 2),
        patch("C", "cde", 3),
    ];
    let sel = named(&depot, &["C", "A", "C"]);
    assert_eq!(ids(&sel), ["C", "A"]);
    assert_eq!(reason(&sel, "A"), "named");
    assert_eq!(sel.patches[0].why, Reason::Named);
    assert!(sel.is_ok());
    assert!(sel.dropped.is_empty());
}

#[test]
fn a_product_spec_autoselects_the_tops_of_its_chains() {
    let depot = [
        patch("P1", "X11", 1),
        sup(patch("P2", "X11", 2), &["P1"]),
        patch("P3", "X11", 3),
        patch("Q1", "CDE", 4),
    ];
    let sel = named(&depot, &["X11"]);
    assert_eq!(ids(&sel), ["P2", "P3"]);
    assert_eq!(reason(&sel, "P2"), "autoselected for X11");
    assert_eq!(
        sel.patches[0].why,
        Reason::Autoselected {
            spec: "X11".to_string()
        }
    );
    assert_eq!(dropped(&sel), [("P1", "P2")]);
    assert!(sel.is_ok());
}

#[test]
fn transitive_chains_keep_only_the_top() {
    let depot = [
        patch("P1", "X11", 1),
        sup(patch("P3", "X11", 3), &["P2"]),
        sup(patch("P2", "X11", 2), &["P1"]),
    ];
    let sel = named(&depot, &["X11"]);
    assert_eq!(ids(&sel), ["P3"]);
    assert_eq!(dropped(&sel), [("P1", "P3"), ("P2", "P3")]);
}

#[test]
fn a_fileset_spec_autoselects_that_fileset_only() {
    let depot = [
        with(patch("C1", "X11", 1), |m| m.fileset = Some("core".into())),
        with(patch("L1", "X11", 2), |m| m.fileset = Some("lib".into())),
        patch("W1", "X11", 3),
    ];
    let sel = named(&depot, &["X11.core"]);
    assert_eq!(ids(&sel), ["C1"]);
    assert_eq!(reason(&sel, "C1"), "autoselected for X11.core");
}

#[test]
fn with_autoselect_off_a_product_spec_is_a_problem() {
    let depot = [patch("P1", "X11", 1), patch("Q1", "CDE", 1)];
    let mut request = Request::new(specs(&["X11", "Q1"]));
    request.autoselect = false;
    let sel = resolve(&depot, &request);
    assert_eq!(ids(&sel), ["Q1"]);
    assert_eq!(kinds(&sel), [ProblemKind::AutoselectOff]);
    assert_eq!(sel.problems[0].id, "X11");
    assert!(sel.problems[0].message.contains("autoselection is off"));
    assert!(!sel.is_ok());
}

#[test]
fn unknown_specs_are_reported() {
    let depot = [patch("P1", "X11", 1)];
    let sel = named(&depot, &["P9", "X11.nope", "P1"]);
    assert_eq!(ids(&sel), ["P1"]);
    assert_eq!(kinds(&sel), [ProblemKind::Unknown, ProblemKind::Unknown]);
    assert_eq!(sel.problems[0].id, "P9");
    assert_eq!(sel.problems[1].id, "X11.nope");
    assert!(sel.problems[1].message.contains("fileset nope of X11"));
}

#[test]
fn narrowing_never_removes_explicit_ids() {
    let depot = [patch("P1", "X11", 1), patch("P2", "X11", 2)];
    let not_p1 = |p: &Patch| p.id != "P1";
    let mut request = Request::new(specs(&["X11"]));
    request.narrow = &not_p1;
    assert_eq!(ids(&resolve(&depot, &request)), ["P2"]);
    request.specs = specs(&["P1", "X11"]);
    let sel = resolve(&depot, &request);
    assert_eq!(ids(&sel), ["P1", "P2"]);
    assert_eq!(reason(&sel, "P1"), "named");
    assert!(sel.is_ok());
}

#[test]
fn naming_a_superseded_patch_is_an_error_and_the_superseder_is_kept() {
    let depot = [
        patch("P1", "X11", 1),
        sup(patch("P2", "X11", 2), &["P1"]),
        sup(patch("P3", "X11", 3), &["P2"]),
    ];
    // Named together with an autoselected superseder.
    let sel = named(&depot, &["P1", "X11"]);
    assert_eq!(ids(&sel), ["P3"]);
    assert_eq!(kinds(&sel), [ProblemKind::SupersededExplicit]);
    assert_eq!(sel.problems[0].id, "P1");
    assert!(sel.problems[0].message.contains("P3"));
    // Both named, in either order.
    for order in [["P1", "P2"], ["P2", "P1"]] {
        let sel = named(&depot, &order);
        assert_eq!(ids(&sel), ["P2"], "{order:?}");
        assert_eq!(kinds(&sel), [ProblemKind::SupersededExplicit], "{order:?}");
        assert_eq!(sel.problems[0].id, "P1");
        assert!(sel.problems[0].message.contains("P2"));
    }
}

#[test]
fn a_named_superseder_drops_autoselected_predecessors() {
    let depot = [patch("P1", "X11", 1), sup(patch("P2", "X11", 2), &["P1"])];
    let sel = named(&depot, &["P2", "X11"]);
    assert_eq!(ids(&sel), ["P2"]);
    assert_eq!(reason(&sel, "P2"), "named");
    assert_eq!(dropped(&sel), [("P1", "P2")]);
    assert!(sel.is_ok());
}

#[test]
fn prerequisites_are_added_before_their_dependents_with_a_reason() {
    let depot = [
        req(patch("A", "X11", 5), &["B1"]),
        patch("B1", "libc", 1),
        req(sup(patch("B2", "libc", 2), &["B1"]), &["C"]),
        patch("C", "kern", 1),
    ];
    let sel = named(&depot, &["A"]);
    assert_eq!(ids(&sel), ["C", "B2", "A"]);
    assert_eq!(
        reason(&sel, "B2"),
        "required by A (for B1, which it supersedes)"
    );
    assert_eq!(reason(&sel, "C"), "required by B2");
    assert_eq!(
        sel.patches[1].why,
        Reason::Required {
            by: "A".to_string(),
            requirement: "B1".to_string()
        }
    );
    assert!(sel.is_ok());
}

#[test]
fn the_newest_top_is_chosen_when_a_requirement_has_several() {
    let depot = [
        req(patch("A", "X11", 5), &["B1"]),
        patch("B1", "libc", 1),
        sup(patch("B2", "libc", 3), &["B1"]),
        sup(patch("B3", "libc", 2), &["B1"]),
    ];
    assert_eq!(ids(&named(&depot, &["A"])), ["B2", "A"]);
}

#[test]
fn a_requirement_missing_from_the_depot_is_reported() {
    let depot = [req(patch("A", "X11", 1), &["GONE"])];
    let sel = named(&depot, &["A"]);
    assert_eq!(ids(&sel), ["A"]);
    assert_eq!(kinds(&sel), [ProblemKind::MissingPrerequisite]);
    assert_eq!(sel.problems[0].id, "A");
    assert!(sel.problems[0].message.contains("GONE"));
}

#[test]
fn a_requirement_gone_from_the_depot_is_met_by_a_superseder() {
    let depot = [
        req(patch("A", "X11", 1), &["OLD"]),
        sup(patch("NEW", "libc", 1), &["OLD"]),
    ];
    let sel = named(&depot, &["A"]);
    assert_eq!(ids(&sel), ["NEW", "A"]);
    assert_eq!(
        reason(&sel, "NEW"),
        "required by A (for OLD, which it supersedes)"
    );
    assert!(sel.is_ok());
}

#[test]
fn a_requirement_is_met_by_a_selected_superseder() {
    let depot = [
        req(patch("A", "X11", 5), &["B1"]),
        patch("B1", "libc", 1),
        sup(patch("B2", "libc", 2), &["B1"]),
        sup(patch("B3", "libc", 3), &["B2"]),
    ];
    let sel = named(&depot, &["A", "B2"]);
    assert_eq!(
        ids(&sel),
        ["B2", "A"],
        "B2 satisfies A, B3 is not pulled in"
    );
    assert_eq!(reason(&sel, "B2"), "named");
    assert!(sel.is_ok());
}

#[test]
fn a_requirement_is_met_by_what_the_target_has_installed() {
    let depot = [
        req(patch("A", "X11", 5), &["B1"]),
        patch("B1", "libc", 1),
        sup(patch("B2", "libc", 2), &["B1"]),
    ];
    for installed in ["B1", "B2"] {
        let node = inventory(
            "n1",
            &[("X11", "1.0"), ("libc", "2.0")],
            &[(installed, PatchState::Committed)],
        );
        let mut request = Request::new(specs(&["A"]));
        request.target = Some(&node);
        let sel = resolve(&depot, &request);
        assert_eq!(ids(&sel), ["A"], "{installed} installed");
        assert!(sel.is_ok());
    }
}

#[test]
fn match_target_selects_applicable_patches_honouring_base_version() {
    let depot = [
        with(patch("G1", "gateway", 1), |m| {
            m.base_version = Some(">=10.0, <11".into())
        }),
        with(patch("G2", "gateway", 2), |m| {
            m.base_version = Some(">=11".into())
        }),
        with(patch("G3", "gateway", 3), |m| {
            m.base_version = Some("garbage<<".into())
        }),
        patch("G4", "gateway", 4),
        with(patch("G5", "gateway", 5), |m| {
            m.base_version = Some("10.1".into())
        }),
        patch("R1", "router", 1),
    ];
    let node = inventory("gw-1", &[("gateway", "10.1")], &[]);
    let mut request = Request::new(Vec::new());
    request.target = Some(&node);
    let sel = resolve(&depot, &request);
    assert_eq!(ids(&sel), ["G1", "G4", "G5"]);
    assert_eq!(
        reason(&sel, "G1"),
        "matches installed gateway 10.1 on node gw-1"
    );
    assert_eq!(
        sel.patches[0].why,
        Reason::Matched {
            product: "gateway".into(),
            version: "10.1".into(),
            node: "gw-1".into()
        }
    );
    assert!(sel.is_ok());

    // The filter list narrows matching too.
    let only_g4 = |p: &Patch| p.id == "G4";
    request.narrow = &only_g4;
    assert_eq!(ids(&resolve(&depot, &request)), ["G4"]);
}

#[test]
fn installed_patches_and_their_predecessors_are_skipped() {
    let depot = [
        patch("G1", "gateway", 1),
        patch("H1", "gateway", 2),
        sup(patch("H2", "gateway", 3), &["H1"]),
        patch("S1", "gateway", 4),
        patch("K1", "gateway", 5),
    ];
    let node = inventory(
        "gw-1",
        &[("gateway", "10.1")],
        &[
            ("G1", PatchState::Applied),
            ("H2", PatchState::Committed),
            ("S1", PatchState::Staged),
            ("K1", PatchState::Superseded),
        ],
    );
    let mut request = Request::new(Vec::new());
    request.target = Some(&node);
    let sel = resolve(&depot, &request);
    assert_eq!(ids(&sel), ["S1"]);

    // Autoselection against a target skips them as well.
    request.specs = specs(&["gateway"]);
    assert_eq!(ids(&resolve(&depot, &request)), ["S1"]);
}

#[test]
fn a_named_patch_that_does_not_apply_to_the_target_is_a_problem() {
    let depot = [
        patch("G1", "gateway", 1),
        patch("R1", "router", 1),
        patch("G2", "gateway", 2),
    ];
    let node = inventory(
        "gw-1",
        &[("gateway", "10.1")],
        &[("G1", PatchState::Applied)],
    );
    let mut request = Request::new(specs(&["G1", "R1", "G2"]));
    request.target = Some(&node);
    let sel = resolve(&depot, &request);
    assert_eq!(ids(&sel), ["G2"]);
    assert_eq!(
        kinds(&sel),
        [ProblemKind::NotApplicable, ProblemKind::NotApplicable]
    );
    assert!(sel.problems[0].message.contains("already applied"));
    assert!(sel.problems[1].message.contains("router is not installed"));
}

#[test]
fn a_downgrade_is_not_offered_against_the_target() {
    let old = with(patch("G1", "gateway", 1), |m| m.version = "10.0".into());
    let same = with(patch("G2", "gateway", 2), |m| m.version = "10.1".into());
    let depot = [old, same];
    let node = inventory("gw-1", &[("gateway", "10.1")], &[]);
    let mut request = Request::new(Vec::new());
    request.target = Some(&node);
    assert_eq!(ids(&resolve(&depot, &request)), ["G2"]);
    request.specs = specs(&["G1"]);
    let sel = resolve(&depot, &request);
    assert_eq!(kinds(&sel), [ProblemKind::NotApplicable]);
    assert!(sel.problems[0].message.contains("downgrade"), "{sel:?}");
}

#[test]
fn kernel_patches_go_first_unless_a_requirement_says_otherwise() {
    let kernel = |p: Patch| with(p, |m| m.kernel = true);
    let depot = [
        patch("A", "X11", 1),
        kernel(patch("K", "vmunix", 1)),
        patch("B", "X11", 1),
    ];
    assert_eq!(ids(&named(&depot, &["A", "B", "K"])), ["K", "A", "B"]);

    let depot = [
        patch("A", "X11", 1),
        kernel(req(patch("K", "vmunix", 1), &["A"])),
        patch("B", "X11", 1),
    ];
    // K cannot go before A; B is free from the start and named first.
    assert_eq!(ids(&named(&depot, &["B", "K"])), ["B", "A", "K"]);
    assert_eq!(ids(&named(&depot, &["K", "B"])), ["B", "A", "K"]);
}

#[test]
fn supersedes_cycles_do_not_hang_and_keep_one_patch() {
    let depot = [
        sup(patch("P1", "X11", 1), &["P2"]),
        sup(patch("P2", "X11", 2), &["P1"]),
        sup(patch("S", "X11", 1), &["S"]),
    ];
    let sel = named(&depot, &["X11"]);
    assert_eq!(ids(&sel), ["P2", "S"]);
    assert_eq!(dropped(&sel), [("P1", "P2")]);
    assert_eq!(
        kinds(&sel),
        [ProblemKind::SupersedesCycle, ProblemKind::SupersedesCycle]
    );
    assert_eq!(resolve(&depot, &Request::new(specs(&["X11"]))), sel);

    // Naming both members of the cycle.
    let sel = named(&depot, &["P1", "P2"]);
    assert_eq!(ids(&sel), ["P1"]);
    assert!(kinds(&sel).contains(&ProblemKind::SupersededExplicit));
}

#[test]
fn prerequisite_cycles_are_reported_and_still_ordered() {
    let depot = [
        req(patch("A", "X11", 1), &["B"]),
        req(patch("B", "X11", 1), &["A", "B"]),
        req(patch("C", "X11", 1), &["A"]),
    ];
    let sel = named(&depot, &["C"]);
    assert_eq!(ids(&sel), ["A", "B", "C"]);
    // The A-B cycle, and B requiring itself, each named.
    assert_eq!(
        kinds(&sel),
        [
            ProblemKind::PrerequisiteCycle,
            ProblemKind::PrerequisiteCycle
        ]
    );
    let named_ids: Vec<&str> = sel.problems.iter().map(|p| p.id.as_str()).collect();
    assert!(
        named_ids.contains(&"A") && named_ids.contains(&"B"),
        "{named_ids:?}"
    );
    let c = ids(&sel).iter().position(|&i| i == "C").unwrap();
    assert_eq!(c, 2, "C depends on the cycle, so it comes after it");
    assert_eq!(named(&depot, &["C"]), sel);
}

#[test]
fn dangling_references_are_harmless_and_a_self_requirement_is_named() {
    let depot = [
        req(sup(patch("P1", "X11", 1), &["GONE", "P1"]), &["P1", "GONE"]),
        req(patch("P2", "X11", 1), &["P1"]),
    ];
    let sel = named(&depot, &["P2"]);
    assert_eq!(ids(&sel), ["P1", "P2"]);
    // P1 requires GONE, which P1 itself supersedes: satisfied. P1 also
    // requires itself, which no install order satisfies: named.
    assert_eq!(
        kinds(&sel),
        [ProblemKind::SupersedesCycle, ProblemKind::PrerequisiteCycle]
    );
}

#[test]
fn serialises_to_the_documented_shape() {
    let depot = [
        patch("P1", "X11", 1),
        req(sup(patch("P2", "X11", 2), &["P1"]), &["L1"]),
        patch("L1", "libc", 1),
    ];
    let sel = named(&depot, &["X11", "nope"]);
    let json = serde_json::to_value(&sel).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "patches": [
                {"id": "L1", "reason": "required by P2"},
                {"id": "P2", "reason": "autoselected for X11"},
            ],
            "dropped": [{"id": "P1", "superseded_by": "P2"}],
            "problems": [{
                "kind": "unknown",
                "id": "nope",
                "message": sel.problems[0].message,
            }],
        })
    );
}

#[test]
fn base_version_constraints() {
    assert_eq!(base_version_satisfied(">=10.1", "10.1"), Some(true));
    assert_eq!(base_version_satisfied(">10.1", "10.1"), Some(false));
    assert_eq!(base_version_satisfied(">= 10.0, < 11", "10.9"), Some(true));
    assert_eq!(base_version_satisfied(">=10.0,<11", "11.0"), Some(false));
    assert_eq!(base_version_satisfied("<=2", "2.0"), Some(true));
    assert_eq!(base_version_satisfied("==1.2", "1.2.0"), Some(true));
    assert_eq!(base_version_satisfied("=1.2", "1.3"), Some(false));
    assert_eq!(base_version_satisfied("1.2", "1.2"), Some(true));
    for bad in ["", ">=", ">=1,", "!=1.0", ">>1", "1 2", "=<1"] {
        assert_eq!(base_version_satisfied(bad, "1.0"), None, "{bad:?}");
    }
}

#[test]
fn a_long_chain_is_walked_once_for_many_requirements() {
    // One chain of 100,000 patches; 1,000 patches of another product
    // each require a different link of it.
    let mut depot: Vec<Patch> = (0..100_000u32)
        .map(|k| {
            let p = patch(&format!("C{k}"), "libc", k);
            if k == 0 {
                p
            } else {
                sup(p, &[&format!("C{}", k - 1)])
            }
        })
        .collect();
    for j in 0..1000 {
        depot.push(req(
            patch(&format!("U{j}"), "app", 1),
            &[&format!("C{}", j * 97)],
        ));
    }
    let users: Vec<String> = (0..1000).map(|j| format!("U{j}")).collect();
    let sel = resolve(&depot, &Request::new(users.clone()));
    assert_eq!(sel.patches.len(), 1001);
    assert_eq!(sel.patches[0].id, "C99999");
    assert_eq!(
        sel.patches[0].reason,
        "required by U0 (for C0, which it supersedes)"
    );
    assert!(sel.is_ok());

    let mut specs = users;
    specs.push("libc".to_string());
    let sel = resolve(&depot, &Request::new(specs));
    assert_eq!(sel.patches.len(), 1001);
    assert_eq!(sel.patches[0].reason, "autoselected for libc");
    assert_eq!(sel.dropped.len(), 99_999);
}

#[test]
fn large_depots_resolve_without_quadratic_work() {
    // 1,000 products with chains of 100 patches; each patch supersedes
    // its predecessor and requires the previous product's same step.
    let mut depot = Vec::new();
    for p in 0..1000 {
        for k in 0..100 {
            let mut patch = patch(&format!("P{p}-{k}"), &format!("prod{p}"), k);
            if k > 0 {
                patch.manifest.supersedes = vec![format!("P{p}-{}", k - 1)];
            }
            if p > 0 {
                patch.manifest.requires = vec![format!("P{}-{k}", p - 1)];
            }
            depot.push(patch);
        }
    }
    let node = Inventory {
        node: "big".into(),
        products: (0..1000)
            .map(|p| (format!("prod{p}"), "1".into()))
            .collect(),
        ..Inventory::default()
    };
    let mut request = Request::new(Vec::new());
    request.target = Some(&node);
    let sel = resolve(&depot, &request);
    assert_eq!(sel.patches.len(), 1000);
    assert_eq!(sel.dropped.len(), 99_000);
    assert!(sel.is_ok());

    // Named bottoms of every chain pull in nothing but prerequisites.
    let request = Request::new((0..1000).map(|p| format!("P{p}-0")).collect());
    let sel = resolve(&depot, &request);
    assert_eq!(sel.patches.len(), 1000);
    assert!(sel.is_ok());

    // The last product's chain top requires the previous product's top,
    // and so on: the whole diagonal is pulled in, in order.
    let sel = named(&depot, &["P999-99"]);
    assert_eq!(sel.patches.len(), 1000);
    assert_eq!(sel.patches[0].id, "P0-99");
    assert_eq!(sel.patches[999].id, "P999-99");
}
