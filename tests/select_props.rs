//! Properties of the selection resolver over random depots: random products,
//! filesets, release dates, `supersedes` and `requires` edges (including ids
//! missing from the depot, self-references and cycles), random targets and
//! random requests.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use patchdeck::engine::inventory::{Inventory, PatchState};
use patchdeck::engine::manifest::{Manifest, Restart, Severity};
use patchdeck::engine::patch::Patch;
use patchdeck::engine::select::{ProblemKind, Request, Selection, resolve};
use proptest::prelude::*;

const PRODUCTS: [&str; 3] = ["alpha", "beta", "gamma"];
const FILESETS: [Option<&str>; 3] = [None, Some("core"), Some("lib")];
const BASES: [Option<&str>; 6] = [
    None,
    Some(">=1.5"),
    Some("<2"),
    Some("==1.5"),
    Some(">=1.0, <3"),
    Some("garbage<<"),
];
const VERSIONS: [&str; 4] = ["1.0", "1.5", "2.0", "3.1"];
const PRODUCT_SPECS: [&str; 6] = ["alpha", "beta", "gamma", "alpha.core", "beta.lib", "delta"];
const STATES: [PatchState; 5] = [
    PatchState::None,
    PatchState::Staged,
    PatchState::Applied,
    PatchState::Committed,
    PatchState::Superseded,
];

#[derive(Debug, Clone)]
struct PatchGen {
    product: usize,
    fileset: usize,
    day: u64,
    supersedes: Vec<usize>,
    requires: Vec<usize>,
    kernel: bool,
    base: usize,
}

#[derive(Debug, Clone)]
struct TargetGen {
    products: Vec<Option<usize>>,
    components: Vec<bool>,
    states: Vec<usize>,
}

#[derive(Debug, Clone)]
enum SpecGen {
    Patch(usize),
    Product(usize),
}

#[derive(Debug, Clone)]
struct Case {
    patches: Vec<PatchGen>,
    specs: Vec<SpecGen>,
    autoselect: bool,
    target: Option<TargetGen>,
    excluded: Vec<bool>,
}

fn id(i: usize) -> String {
    format!("P{i}")
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..=40, 1usize..=3).prop_flat_map(|(n, products)| {
        // Ids P{n}..P{n+2} are referenced but not in the depot.
        let ids = 0..n + 3;
        let patch = (
            0..products,
            0..FILESETS.len(),
            0u64..20,
            prop::collection::vec(ids.clone(), 0..3),
            prop::collection::vec(ids.clone(), 0..3),
            prop::bool::weighted(0.2),
            0..BASES.len(),
        )
            .prop_map(
                |(product, fileset, day, supersedes, requires, kernel, base)| PatchGen {
                    product,
                    fileset,
                    day,
                    supersedes,
                    requires,
                    kernel,
                    base,
                },
            );
        let target = (
            prop::collection::vec(prop::option::of(0..VERSIONS.len()), PRODUCTS.len()),
            prop::collection::vec(prop::bool::weighted(0.3), PRODUCTS.len() * 2),
            prop::collection::vec(0..STATES.len() + 3, n + 3),
        )
            .prop_map(|(products, components, states)| TargetGen {
                products,
                components,
                states,
            });
        let spec = prop_oneof![
            (0..n + 3).prop_map(SpecGen::Patch),
            (0..PRODUCT_SPECS.len()).prop_map(SpecGen::Product),
        ];
        (
            prop::collection::vec(patch, n),
            prop::collection::vec(spec, 0..5),
            prop::bool::weighted(0.8),
            prop::option::of(target),
            prop::collection::vec(prop::bool::weighted(0.2), n + 3),
        )
            .prop_map(|(patches, specs, autoselect, target, excluded)| Case {
                patches,
                specs,
                autoselect,
                target,
                excluded,
            })
    })
}

fn depot(case: &Case) -> Vec<Patch> {
    let ids = |list: &[usize]| list.iter().map(|&i| id(i)).collect::<Vec<_>>();
    case.patches
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let manifest = Manifest {
                id: None,
                title: format!("patch {i}"),
                description: String::new(),
                product: PRODUCTS[g.product].to_string(),
                fileset: FILESETS[g.fileset].map(str::to_string),
                version: "1.0".to_string(),
                vendor: String::new(),
                arch: "any".to_string(),
                categories: Vec::new(),
                severity: Severity::Low,
                released: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
                    + chrono::Days::new(g.day),
                supersedes: ids(&g.supersedes),
                requires: ids(&g.requires),
                restart: Restart::None,
                hot: false,
                kernel: g.kernel,
                base_version: BASES[g.base].map(str::to_string),
                files: Vec::new(),
            };
            Patch::new(id(i), format!("{}.patch", id(i)), manifest)
        })
        .collect()
}

fn inventory(t: &TargetGen) -> Inventory {
    let mut products = BTreeMap::new();
    let mut components = BTreeMap::new();
    for (p, version) in t.products.iter().enumerate() {
        if let Some(v) = version {
            products.insert(PRODUCTS[p].to_string(), VERSIONS[*v].to_string());
            for (f, fileset) in ["core", "lib"].iter().enumerate() {
                if t.components[p * 2 + f] {
                    components.insert(
                        format!("{}.{fileset}", PRODUCTS[p]),
                        VERSIONS[*v].to_string(),
                    );
                }
            }
        }
    }
    let patches = t
        .states
        .iter()
        .enumerate()
        .filter_map(|(i, &s)| STATES.get(s).map(|&state| (id(i), state)))
        .collect();
    Inventory {
        node: "node-1".to_string(),
        products,
        components,
        patches,
    }
}

fn specs(case: &Case) -> Vec<String> {
    case.specs
        .iter()
        .map(|s| match s {
            SpecGen::Patch(i) => id(*i),
            SpecGen::Product(k) => PRODUCT_SPECS[*k].to_string(),
        })
        .collect()
}

/// Raw supersession over the depot, cycles and all.
struct Supersedes(HashMap<String, Vec<String>>);

impl Supersedes {
    fn new(depot: &[Patch]) -> Supersedes {
        Supersedes(
            depot
                .iter()
                .map(|p| (p.id.clone(), p.manifest.supersedes.clone()))
                .collect(),
        )
    }

    /// `a` supersedes `b` through one or more `supersedes` steps.
    fn reaches(&self, a: &str, b: &str) -> bool {
        let mut seen = HashSet::new();
        let mut stack: Vec<&str> = self
            .0
            .get(a)
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        while let Some(v) = stack.pop() {
            if v == b {
                return true;
            }
            if seen.insert(v) {
                stack.extend(self.0.get(v).into_iter().flatten().map(String::as_str));
            }
        }
        false
    }
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let depot = depot(case);
    let target = case.target.as_ref().map(inventory);
    let excluded: HashSet<String> = case
        .excluded
        .iter()
        .enumerate()
        .filter(|&(_, &e)| e)
        .map(|(i, _)| id(i))
        .collect();
    let narrow = |p: &Patch| !excluded.contains(&p.id);
    let request = Request {
        specs: specs(case),
        autoselect: case.autoselect,
        target: target.as_ref(),
        narrow: &narrow,
    };

    // (e) never panics, and (c) is deterministic.
    let sel: Selection = resolve(&depot, &request);
    let again = resolve(&depot, &request);
    prop_assert_eq!(&sel, &again);
    prop_assert_eq!(
        serde_json::to_value(&sel).unwrap(),
        serde_json::to_value(&again).unwrap()
    );

    let by_id: HashMap<&str, &Patch> = depot.iter().map(|p| (p.id.as_str(), p)).collect();
    let graph = Supersedes::new(&depot);
    let position: HashMap<&str, usize> = sel
        .patches
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();

    // (d) no id twice, and every selected id is a depot patch.
    prop_assert_eq!(
        position.len(),
        sel.patches.len(),
        "duplicate ids: {:?}",
        sel
    );
    for s in &sel.patches {
        prop_assert!(by_id.contains_key(s.id.as_str()), "{} not in depot", s.id);
    }

    // (a) no selected patch is superseded by another selected patch.
    for x in &sel.patches {
        for y in &sel.patches {
            prop_assert!(
                x.id == y.id || !graph.reaches(&x.id, &y.id),
                "{} supersedes {} and both are selected: {:?}",
                x.id,
                y.id,
                sel
            );
        }
    }

    // (b) selected requirements (or their selected superseders) go first.
    let prerequisite_cycle = sel
        .problems
        .iter()
        .any(|p| p.kind == ProblemKind::PrerequisiteCycle);
    if !prerequisite_cycle {
        for (i, x) in sel.patches.iter().enumerate() {
            for r in &by_id[x.id.as_str()].manifest.requires {
                for s in &sel.patches {
                    if s.id != x.id && (&s.id == r || graph.reaches(&s.id, r)) {
                        prop_assert!(
                            position[s.id.as_str()] < i,
                            "{} requires {} but {} comes after it: {:?}",
                            x.id,
                            r,
                            s.id,
                            sel
                        );
                    }
                }
            }
        }
    }

    // Every requirement of a selected patch is met, or reported missing.
    let installed = |r: &str| {
        target.as_ref().is_some_and(|t| {
            t.state(r).is_installed()
                || t.patches.iter().any(|(i, st)| {
                    st.is_installed() && by_id.contains_key(i.as_str()) && graph.reaches(i, r)
                })
        })
    };
    for x in &sel.patches {
        for r in &by_id[x.id.as_str()].manifest.requires {
            let met = sel
                .patches
                .iter()
                .any(|s| &s.id == r || graph.reaches(&s.id, r))
                || installed(r);
            let reported = sel.problems.iter().any(|p| {
                p.kind == ProblemKind::MissingPrerequisite && p.id == x.id && p.message.contains(r)
            });
            prop_assert!(met || reported, "{} requires {}: {:?}", x.id, r, sel);
        }
    }

    // Nothing the target already has (directly or by supersession).
    if let Some(t) = &target {
        for s in &sel.patches {
            prop_assert!(!installed(&s.id), "{} is already on the target", s.id);
            prop_assert!(!t.state(&s.id).is_installed());
        }
    }

    // Autoselected and matched patches passed the filter list.
    for s in &sel.patches {
        if s.reason.starts_with("autoselected") || s.reason.starts_with("matches") {
            prop_assert!(narrow(by_id[s.id.as_str()]), "{} was filtered out", s.id);
        }
    }

    // Dropped patches are left out, each replaced by a selected patch that
    // supersedes it.
    let mut dropped = BTreeSet::new();
    for d in &sel.dropped {
        prop_assert!(dropped.insert(d.id.as_str()), "{} dropped twice", d.id);
        prop_assert!(!position.contains_key(d.id.as_str()));
        prop_assert!(position.contains_key(d.superseded_by.as_str()));
        prop_assert!(graph.reaches(&d.superseded_by, &d.id));
    }

    // Every named depot patch is selected or has a problem explaining why not.
    for spec in &request.specs {
        if by_id.contains_key(spec.as_str()) {
            prop_assert!(
                position.contains_key(spec.as_str()) || sel.problems.iter().any(|p| &p.id == spec),
                "{} was named but neither selected nor reported: {:?}",
                spec,
                sel
            );
        }
    }

    // With no specs and no target there is nothing to do.
    if request.specs.is_empty() && target.is_none() {
        prop_assert!(sel.patches.is_empty() && sel.is_ok());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn resolution_properties_hold(case in case()) {
        check(&case)?;
    }

    /// The same properties when matching a target: no specs, a node always.
    #[test]
    fn match_target_properties_hold(case in case()) {
        let mut case = case;
        case.specs.clear();
        let n = case.patches.len();
        case.target.get_or_insert_with(|| TargetGen {
            products: vec![Some(1); PRODUCTS.len()],
            components: vec![false; PRODUCTS.len() * 2],
            states: vec![STATES.len(); n + 3],
        });
        check(&case)?;
    }
}
