//! The selection resolver: from what the operator named (patch ids and
//! `PRODUCT[.FILESET]` specs) to the exact patches to install, in install
//! order, each with the reason it is there, plus what was left out and why.
//!
//! Pure: no IO, and the same input always gives the same output. The rules
//! are explained for operators in `docs/selection.md`.
//!
//! Depots can hold 100,000 patches, so one call indexes the depot once (ids
//! and the `supersedes` graph, forwards and backwards) and every later step
//! only walks the part of the graph the request actually touches. Supersession
//! is tracked on strongly connected components, so cycles in `supersedes`
//! behave like one chain instead of looping.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt;

use serde::Serialize;

use crate::engine::inventory::Inventory;
use crate::engine::patch::Patch;
use crate::engine::requirement;
use crate::engine::version::base_version_satisfied;

/// "No node / no component" in the index-based tables below.
const NONE: usize = usize::MAX;

/// What the operator asked for.
pub struct Request<'a> {
    /// Patch ids and `PRODUCT[.FILESET]` specs, in the order named.
    pub specs: Vec<String>,
    /// Whether a product spec selects that product's latest applicable
    /// patches. On by default; `--no-autoselect` turns it off.
    pub autoselect: bool,
    /// The match-target: what the node has installed.
    pub target: Option<&'a Inventory>,
    /// The filter list. It narrows autoselection and target matching only:
    /// explicitly named ids and prerequisites are never filtered out.
    pub narrow: &'a dyn Fn(&Patch) -> bool,
}

/// The `narrow` of a request without a filter list: keeps every patch.
pub fn no_narrowing(_: &Patch) -> bool {
    true
}

impl<'a> Request<'a> {
    /// A request for `specs` with autoselection on, no target, no filter.
    pub fn new(specs: Vec<String>) -> Request<'a> {
        Request {
            specs,
            autoselect: true,
            target: None,
            narrow: &no_narrowing,
        }
    }
}

impl Default for Request<'_> {
    fn default() -> Self {
        Request::new(Vec::new())
    }
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("specs", &self.specs)
            .field("autoselect", &self.autoselect)
            .field("target", &self.target.map(|t| t.node.as_str()))
            .finish_non_exhaustive()
    }
}

/// The outcome of [`resolve`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Selection {
    /// The patches to install, in install order.
    pub patches: Vec<Selected>,
    /// Autoselected or matched patches left out because a selected patch
    /// supersedes them.
    pub dropped: Vec<Dropped>,
    /// Everything that needs the operator's attention; empty when the
    /// selection can go ahead.
    pub problems: Vec<Problem>,
}

impl Selection {
    /// True when nothing needs the operator's attention.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One patch to install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selected {
    pub id: String,
    /// Why it is in the selection, for people.
    pub reason: String,
    /// The same, for programs.
    #[serde(skip)]
    pub why: Reason,
}

/// Why a patch is in the selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Named by id.
    Named,
    /// The latest applicable patch of the product spec `spec`.
    Autoselected { spec: String },
    /// Applicable to the match-target; no specs were given.
    Matched {
        product: String,
        version: String,
        node: String,
    },
    /// Satisfies the `requires` entry `requirement` of patch `by`. The
    /// selected patch is `requirement` itself or a patch superseding it.
    Required { by: String, requirement: String },
}

/// A patch left out because a selected patch supersedes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dropped {
    pub id: String,
    /// The selected patch that replaces it (the top of its chain).
    pub superseded_by: String,
}

/// Something the operator has to look at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The spec or patch id the problem is about.
    pub id: String,
    pub message: String,
}

/// The kinds of [`Problem`]; serialised in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A spec that is neither a depot patch id nor a depot product (fileset).
    Unknown,
    /// A product spec while autoselection is off.
    AutoselectOff,
    /// A named patch that does not apply to the target.
    NotApplicable,
    /// A named patch superseded by another patch in the selection.
    SupersededExplicit,
    /// Patches whose `supersedes` lists form a cycle.
    SupersedesCycle,
    /// A requirement neither the depot nor the target can satisfy.
    MissingPrerequisite,
    /// Selected patches that require one another.
    PrerequisiteCycle,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::AutoselectOff => "autoselect_off",
            Self::NotApplicable => "not_applicable",
            Self::SupersededExplicit => "superseded_explicit",
            Self::SupersedesCycle => "supersedes_cycle",
            Self::MissingPrerequisite => "missing_prerequisite",
            Self::PrerequisiteCycle => "prerequisite_cycle",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Resolves `request` against the depot `patches`.
pub fn resolve(patches: &[Patch], request: &Request) -> Selection {
    Resolver::new(patches, request).run()
}

// ---------------------------------------------------------------------------
// The depot as a graph.

/// The depot indexed once per call. Nodes `0..patches.len()` are the depot
/// patches (by slice position); ids that only appear in `supersedes` lists
/// get nodes after them. Edges run from a patch to the ids it supersedes.
struct Graph<'a> {
    patches: &'a [Patch],
    names: Vec<&'a str>,
    index: HashMap<&'a str, usize>,
    /// False for a later patch repeating an earlier id: it is ignored.
    primary: Vec<bool>,
    fwd_start: Vec<usize>,
    fwd: Vec<usize>,
    rev_start: Vec<usize>,
    rev: Vec<usize>,
}

impl<'a> Graph<'a> {
    fn new(patches: &'a [Patch]) -> Graph<'a> {
        let n = patches.len();
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(n);
        let mut names = Vec::with_capacity(n);
        let mut primary = Vec::with_capacity(n);
        for (i, p) in patches.iter().enumerate() {
            primary.push(*index.entry(p.id.as_str()).or_insert(i) == i);
            names.push(p.id.as_str());
        }
        let mut fwd_start = Vec::with_capacity(n + 1);
        let mut fwd = Vec::new();
        for (i, p) in patches.iter().enumerate() {
            fwd_start.push(fwd.len());
            if !primary[i] {
                continue;
            }
            for s in &p.manifest.supersedes {
                let next = names.len();
                let node = *index.entry(s.as_str()).or_insert(next);
                if node == next {
                    names.push(s.as_str());
                }
                fwd.push(node);
            }
        }
        fwd_start.push(fwd.len());
        // Reverse edges, bucketed by target node.
        let total = names.len();
        let mut rev_start = vec![0usize; total + 1];
        for &w in &fwd {
            rev_start[w + 1] += 1;
        }
        for i in 0..total {
            rev_start[i + 1] += rev_start[i];
        }
        let mut fill = rev_start.clone();
        let mut rev = vec![0usize; fwd.len()];
        for v in 0..n {
            for &w in &fwd[fwd_start[v]..fwd_start[v + 1]] {
                rev[fill[w]] = v;
                fill[w] += 1;
            }
        }
        Graph {
            patches,
            names,
            index,
            primary,
            fwd_start,
            fwd,
            rev_start,
            rev,
        }
    }

    fn depot_len(&self) -> usize {
        self.patches.len()
    }

    fn nodes(&self) -> usize {
        self.names.len()
    }

    fn node(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// A primary depot patch named `id`.
    fn patch_node(&self, id: &str) -> Option<usize> {
        self.node(id).filter(|&v| v < self.depot_len())
    }

    /// Ids `v` supersedes directly.
    fn succ(&self, v: usize) -> &[usize] {
        if v < self.depot_len() {
            &self.fwd[self.fwd_start[v]..self.fwd_start[v + 1]]
        } else {
            &[]
        }
    }

    /// Depot patches superseding `v` directly.
    fn preds(&self, v: usize) -> &[usize] {
        &self.rev[self.rev_start[v]..self.rev_start[v + 1]]
    }

    /// Orders by age: newest is greatest (`released`, then id).
    fn age(&self, v: usize) -> (chrono::NaiveDate, &'a str) {
        let p = &self.patches[v];
        (p.manifest.released, p.id.as_str())
    }
}

impl requirement::Graph for Graph<'_> {
    fn supersedes_directly(&self, id: &str) -> Vec<&str> {
        self.node(id)
            .map(|v| self.succ(v).iter().map(|&w| self.names[w]).collect())
            .unwrap_or_default()
    }
}

/// Tarjan's strongly connected components, iterative and incremental: `run`
/// can be called for more roots later. Component numbers are handed out as
/// components complete, so if component `a` reaches a different component
/// `b`, then `b < a`.
struct Scc {
    index: Vec<usize>,
    low: Vec<usize>,
    comp: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    counter: usize,
    members: Vec<Vec<usize>>,
    /// More than one member, or a member with an edge to itself.
    cyclic: Vec<bool>,
}

impl Scc {
    fn new(nodes: usize) -> Scc {
        Scc {
            index: vec![NONE; nodes],
            low: vec![NONE; nodes],
            comp: vec![NONE; nodes],
            on_stack: vec![false; nodes],
            stack: Vec::new(),
            counter: 0,
            members: Vec::new(),
            cyclic: Vec::new(),
        }
    }

    fn open(&mut self, v: usize) {
        self.index[v] = self.counter;
        self.low[v] = self.counter;
        self.counter += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
    }

    /// The component of `root`, computing it (and everything reachable from
    /// it) if needed.
    fn run<'g>(&mut self, root: usize, succ: impl Fn(usize) -> &'g [usize]) -> usize {
        if self.comp[root] != NONE {
            return self.comp[root];
        }
        self.open(root);
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(&(v, i)) = call.last() {
            let out = succ(v);
            if let Some(&w) = out.get(i) {
                if let Some(top) = call.last_mut() {
                    top.1 += 1;
                }
                if self.comp[w] != NONE {
                    continue;
                }
                if self.index[w] == NONE {
                    self.open(w);
                    call.push((w, 0));
                } else if self.on_stack[w] {
                    self.low[v] = self.low[v].min(self.index[w]);
                }
                continue;
            }
            call.pop();
            if let Some(&(u, _)) = call.last() {
                self.low[u] = self.low[u].min(self.low[v]);
            }
            if self.low[v] == self.index[v] {
                let id = self.members.len();
                let mut members = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    self.comp[w] = id;
                    members.push(w);
                    if w == v {
                        break;
                    }
                }
                members.sort_unstable();
                self.cyclic.push(members.len() > 1 || out.contains(&v));
                self.members.push(members);
            }
        }
        self.comp[root]
    }
}

// ---------------------------------------------------------------------------
// The resolver.

/// How a patch entered the selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Named,
    /// Autoselected by the spec at this position.
    Auto(usize),
    Matched,
    Required {
        by: usize,
        requirement: usize,
    },
}

enum Outcome {
    Added,
    Already,
    /// Refused: this selected patch supersedes it.
    Superseded(usize),
}

/// A problem whose message is written at the end, once it is known which
/// patch finally replaced the superseded one.
enum Pending {
    Ready(Problem),
    SupersededExplicit { old: usize, by: usize },
}

/// Install-order key groups.
const NAMED: u8 = 0;
const CANDIDATE: u8 = 1;
const PREREQUISITE: u8 = 2;

struct Resolver<'a> {
    g: Graph<'a>,
    specs: &'a [String],
    autoselect: bool,
    target: Option<&'a Inventory>,
    narrow: &'a dyn Fn(&Patch) -> bool,
    /// Supersession components, computed lazily over the nodes touched.
    scc: Scc,
    reported_comps: usize,
    /// Per node: currently selected.
    selected: Vec<bool>,
    /// Per component: its selected member. At most one, since the members
    /// of a cycle supersede one another.
    comp_selected: Vec<usize>,
    /// Per component: the patch whose selection made it superseded. The set
    /// of covered components is exactly what the current selection
    /// supersedes; a patch found here may since have been replaced (`live`).
    covered_by: Vec<usize>,
    /// Selected patches later replaced by a superseder → that superseder.
    removed_by: HashMap<usize, usize>,
    origin: HashMap<usize, Origin>,
    order_key: HashMap<usize, (u8, usize)>,
    /// Every patch ever selected, in the order selected.
    added: Vec<usize>,
    /// (candidate, the selected patch that superseded it).
    dropped: Vec<(usize, usize)>,
    pending: Vec<Pending>,
    /// Per node: an installed depot patch on the target that supersedes it.
    installed_by: Vec<usize>,
    has_memo: HashMap<(&'a str, Option<&'a str>), bool>,
    provider_memo: HashMap<usize, Option<usize>>,
    /// Visit marks for backward walks, by generation.
    stamp: Vec<u32>,
    generation: u32,
}

impl<'a> Resolver<'a> {
    fn new(patches: &'a [Patch], request: &'a Request<'a>) -> Resolver<'a> {
        let g = Graph::new(patches);
        let nodes = g.nodes();
        let mut installed_by = vec![NONE; nodes];
        if let Some(target) = request.target {
            let mut stack = Vec::new();
            for (id, state) in &target.patches {
                if !state.is_installed() {
                    continue;
                }
                let Some(t) = g.patch_node(id) else { continue };
                stack.push(t);
                while let Some(v) = stack.pop() {
                    for &w in g.succ(v) {
                        if installed_by[w] == NONE {
                            installed_by[w] = t;
                            stack.push(w);
                        }
                    }
                }
            }
        }
        Resolver {
            specs: &request.specs,
            autoselect: request.autoselect,
            target: request.target,
            narrow: request.narrow,
            scc: Scc::new(nodes),
            reported_comps: 0,
            selected: vec![false; nodes],
            comp_selected: vec![NONE; nodes],
            covered_by: vec![NONE; nodes],
            removed_by: HashMap::new(),
            origin: HashMap::new(),
            order_key: HashMap::new(),
            added: Vec::new(),
            dropped: Vec::new(),
            pending: Vec::new(),
            installed_by,
            has_memo: HashMap::new(),
            provider_memo: HashMap::new(),
            stamp: vec![0; nodes],
            generation: 0,
            g,
        }
    }

    fn problem(&mut self, kind: ProblemKind, id: &str, message: String) {
        self.pending.push(Pending::Ready(Problem {
            kind,
            id: id.to_string(),
            message,
        }));
    }

    fn run(mut self) -> Selection {
        let n = self.g.depot_len();
        let specs = self.specs;

        // Which specs are patch ids, and which depot patches each product
        // spec covers (one pass over the depot for all of them).
        let mut spec_patch = vec![None; specs.len()];
        let mut spec_parts = vec![("", None); specs.len()];
        let mut by_product: HashMap<&str, Vec<usize>> = HashMap::new();
        for (k, spec) in specs.iter().enumerate() {
            if let Some(v) = self.g.patch_node(spec) {
                spec_patch[k] = Some(v);
                continue;
            }
            let parts = match spec.split_once('.') {
                Some((product, fileset)) => (product, Some(fileset)),
                None => (spec.as_str(), None),
            };
            spec_parts[k] = parts;
            by_product.entry(parts.0).or_default().push(k);
        }
        let mut product_known = vec![false; specs.len()];
        let mut hits: Vec<Vec<usize>> = vec![Vec::new(); specs.len()];
        if !by_product.is_empty() {
            for v in (0..n).filter(|&v| self.g.primary[v]) {
                let m = &self.g.patches[v].manifest;
                for &k in by_product.get(m.product.as_str()).into_iter().flatten() {
                    product_known[k] = true;
                    let wanted = spec_parts[k].1;
                    if wanted.is_none() || wanted == m.fileset.as_deref() {
                        hits[k].push(v);
                    }
                }
            }
        }

        let mut explicit = Vec::new();
        let mut candidates: Vec<(usize, Origin)> = Vec::new();
        let mut considered = vec![false; n];
        for (k, spec) in specs.iter().enumerate() {
            if let Some(v) = spec_patch[k] {
                match self.refusal(v) {
                    Some(why) => {
                        let node = self.target.map_or("", |t| t.node.as_str());
                        let message = format!("{spec} cannot be installed on node {node}: {why}");
                        self.problem(ProblemKind::NotApplicable, spec, message);
                    }
                    None => explicit.push((k, v)),
                }
            } else if hits[k].is_empty() {
                let message = match spec_parts[k] {
                    (product, Some(fileset)) if product_known[k] => format!(
                        "\"{spec}\" is not a patch id, and no patch in the depot is for \
                         fileset {fileset} of {product}"
                    ),
                    _ => format!(
                        "\"{spec}\" is not a patch id, and no patch in the depot is for a \
                         product of that name"
                    ),
                };
                self.problem(ProblemKind::Unknown, spec, message);
            } else if !self.autoselect {
                let message = format!(
                    "\"{spec}\" names a product, but autoselection is off, so it selects \
                     nothing; name the patches by id, or leave autoselection on"
                );
                self.problem(ProblemKind::AutoselectOff, spec, message);
            } else {
                for &v in &hits[k] {
                    if !std::mem::replace(&mut considered[v], true) && self.applicable(v) {
                        candidates.push((v, Origin::Auto(k)));
                    }
                }
            }
        }
        if specs.is_empty() && self.target.is_some() {
            for v in 0..n {
                if self.g.primary[v] && self.applicable(v) {
                    candidates.push((v, Origin::Matched));
                }
            }
        }

        for (k, v) in explicit {
            if let Outcome::Superseded(by) = self.add(v, Origin::Named, (NAMED, k)) {
                self.pending
                    .push(Pending::SupersededExplicit { old: v, by });
            }
        }

        // Candidates go in supersession order (superseders first, newest
        // first within a cycle), so each one superseded by another is
        // refused as it comes and only the top of each chain stays.
        for &(v, _) in &candidates {
            self.comp(v);
        }
        candidates.sort_by(|&(a, _), &(b, _)| {
            let (ca, cb) = (self.scc.comp[a], self.scc.comp[b]);
            cb.cmp(&ca)
                .then_with(|| self.g.age(b).cmp(&self.g.age(a)))
                .then_with(|| a.cmp(&b))
        });
        for (v, origin) in candidates {
            if let Outcome::Superseded(by) = self.add(v, origin, (CANDIDATE, v)) {
                self.dropped.push((v, by));
            }
        }

        // Prerequisites, breadth-first; newly added ones join the queue.
        let mut next = 0;
        while let Some(&x) = self.added.get(next) {
            next += 1;
            self.require(x);
        }

        self.finish()
    }

    /// Applicable for autoselection and target matching.
    fn applicable(&mut self, v: usize) -> bool {
        self.refusal(v).is_none() && (self.narrow)(&self.g.patches[v])
    }

    /// Why patch `v` does not apply to the target, if it does not.
    fn refusal(&mut self, v: usize) -> Option<String> {
        let target = self.target?;
        let patch = &self.g.patches[v];
        let m = &patch.manifest;
        let key = (m.product.as_str(), m.fileset.as_deref());
        let has = *self
            .has_memo
            .entry(key)
            .or_insert_with(|| target.has(key.0, key.1));
        if !has {
            let what = match &m.fileset {
                Some(fileset) => format!("{}.{fileset}", m.product),
                None => m.product.clone(),
            };
            return Some(format!("{what} is not installed there"));
        }
        if let Some(base) = &m.base_version {
            let installed = target.products.get(&m.product).map_or("", String::as_str);
            match base_version_satisfied(base, installed) {
                None => return Some(format!("its base_version {base:?} cannot be parsed")),
                Some(false) => {
                    return Some(format!(
                        "it needs {} {base}, and the node has {installed}",
                        m.product
                    ));
                }
                Some(true) => {}
            }
        }
        let state = target.state(&patch.id);
        if state.is_installed() {
            return Some(format!("it is already {state} there"));
        }
        if let Some(have) = target.downgrade(&m.product, m.fileset.as_deref(), &m.version) {
            return Some(format!(
                "it is a downgrade: it brings version {} and the node has {have}",
                m.version
            ));
        }
        let by = self.installed_by[v];
        if by != NONE && by != v {
            return Some(format!(
                "{}, which supersedes it, is installed there",
                self.g.names[by]
            ));
        }
        None
    }

    /// The supersession component of `v`, reporting cycles found on the way.
    fn comp(&mut self, v: usize) -> usize {
        let g = &self.g;
        let c = self.scc.run(v, |x| g.succ(x));
        while self.reported_comps < self.scc.members.len() {
            let k = self.reported_comps;
            self.reported_comps += 1;
            if !self.scc.cyclic[k] {
                continue;
            }
            let mut ids: Vec<&str> = self.scc.members[k]
                .iter()
                .map(|&m| self.g.names[m])
                .collect();
            ids.sort_unstable();
            let message = if ids.len() == 1 {
                format!("{} lists itself in supersedes", ids[0])
            } else {
                format!(
                    "patches {} supersede one another in a cycle; they are treated as one \
                     chain, but the depot should be fixed",
                    ids.join(", ")
                )
            };
            self.problem(ProblemKind::SupersedesCycle, ids[0], message);
        }
        c
    }

    /// The patch that finally replaced `v` (or `v` itself if still selected).
    fn live(&self, mut v: usize) -> usize {
        for _ in 0..=self.removed_by.len() {
            match self.removed_by.get(&v) {
                Some(&by) => v = by,
                None => break,
            }
        }
        v
    }

    /// Selects `v` unless a selected patch supersedes it; removes selected
    /// patches `v` supersedes.
    fn add(&mut self, v: usize, origin: Origin, key: (u8, usize)) -> Outcome {
        if self.selected[v] {
            return Outcome::Already;
        }
        if let Some(&by) = self.removed_by.get(&v) {
            return Outcome::Superseded(self.live(by));
        }
        let c = self.comp(v);
        if self.comp_selected[c] != NONE {
            return Outcome::Superseded(self.comp_selected[c]);
        }
        if self.covered_by[c] != NONE {
            return Outcome::Superseded(self.live(self.covered_by[c]));
        }
        self.selected[v] = true;
        self.comp_selected[c] = v;
        self.origin.insert(v, origin);
        self.order_key.insert(v, key);
        self.added.push(v);

        // Cover everything `v` supersedes; a covered component's own
        // descendants are covered already, so each is visited once per call.
        let mut removed = Vec::new();
        let mut stack = vec![c];
        while let Some(d) = stack.pop() {
            for &m in &self.scc.members[d] {
                for &w in self.g.succ(m) {
                    let e = self.scc.comp[w];
                    if e == d || e == NONE || self.covered_by[e] != NONE {
                        continue;
                    }
                    self.covered_by[e] = v;
                    let y = self.comp_selected[e];
                    if y != NONE {
                        self.comp_selected[e] = NONE;
                        self.selected[y] = false;
                        self.removed_by.insert(y, v);
                        removed.push(y);
                    }
                    stack.push(e);
                }
            }
        }
        for y in removed {
            match self.origin.get(&y) {
                Some(Origin::Named) => self
                    .pending
                    .push(Pending::SupersededExplicit { old: y, by: v }),
                _ => self.dropped.push((y, v)),
            }
        }
        Outcome::Added
    }

    /// `v` is selected or superseded by a selected patch.
    fn satisfied_by_selection(&self, v: usize) -> bool {
        if self.selected[v] {
            return true;
        }
        let c = self.scc.comp[v];
        c != NONE && (self.comp_selected[c] != NONE || self.covered_by[c] != NONE)
    }

    /// The target has `id` installed, or an installed patch superseding it:
    /// the one rule of [`requirement`], over the depot's graph.
    fn satisfied_by_target(&self, id: &str) -> bool {
        let Some(target) = self.target else {
            return false;
        };
        let installed = target
            .patches
            .iter()
            .filter(|(_, s)| s.is_installed())
            .map(|(p, _)| p.as_str());
        requirement::met_by(&self.g, id, installed).is_some()
    }

    fn next_generation(&mut self) -> u32 {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.generation = 1;
        }
        self.generation
    }

    /// The depot patch to install for requirement `r`: the newest top of
    /// the chains above it (`r` itself when nothing supersedes it).
    fn provider(&mut self, r: usize) -> Option<usize> {
        if let Some(&p) = self.provider_memo.get(&r) {
            return p;
        }
        let generation = self.next_generation();
        let n = self.g.depot_len();
        let mut best_top: Option<usize> = None;
        let mut best_any: Option<usize> = None;
        let newer =
            |g: &Graph, a: usize, best: Option<usize>| best.is_none_or(|b| g.age(a) > g.age(b));
        self.stamp[r] = generation;
        let mut stack = vec![r];
        while let Some(v) = stack.pop() {
            if v < n {
                if newer(&self.g, v, best_any) {
                    best_any = Some(v);
                }
                if self.g.preds(v).is_empty() && newer(&self.g, v, best_top) {
                    best_top = Some(v);
                }
            }
            for &p in self.g.preds(v) {
                if self.stamp[p] != generation {
                    self.stamp[p] = generation;
                    stack.push(p);
                }
            }
        }
        let chosen = best_top.or(best_any);
        self.provider_memo.insert(r, chosen);
        chosen
    }

    /// Makes sure every requirement of `x` is met, adding prerequisites.
    fn require(&mut self, x: usize) {
        let patches = self.g.patches;
        let mut seen: Vec<&str> = Vec::new();
        for r in &patches[x].manifest.requires {
            if !self.selected[x] {
                return;
            }
            if seen.contains(&r.as_str()) {
                continue;
            }
            seen.push(r.as_str());
            let node = self.g.node(r);
            if node.is_some_and(|v| self.satisfied_by_selection(v)) || self.satisfied_by_target(r) {
                continue;
            }
            let provider = node.and_then(|v| self.provider(v).map(|p| (v, p)));
            match provider {
                Some((requirement, p)) => {
                    let key = (PREREQUISITE, self.added.len());
                    self.add(p, Origin::Required { by: x, requirement }, key);
                }
                None => {
                    let id = &patches[x].id;
                    let message = if self.target.is_some() {
                        format!(
                            "{id} requires {r}, which is neither in the depot nor installed \
                             on the target, and nothing in either supersedes it"
                        )
                    } else {
                        format!(
                            "{id} requires {r}, which is not in the depot, and no depot \
                             patch supersedes it"
                        )
                    };
                    self.problem(ProblemKind::MissingPrerequisite, id, message);
                }
            }
        }
    }

    /// Supersession components directly above `c` that matter to the
    /// current selection: they hold a selected patch or are covered.
    fn relevant_preds(&self, c: usize) -> Vec<usize> {
        let mut out = Vec::new();
        for &m in &self.scc.members[c] {
            for &p in self.g.preds(m) {
                let d = self.scc.comp[p];
                if d != NONE
                    && d != c
                    && (self.comp_selected[d] != NONE || self.covered_by[d] != NONE)
                {
                    out.push(d);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The selected patches that are `r` or supersede it, memoised per
    /// component in `memo`. Only components the selection covers are
    /// walked, and each of them once per call of `finish`.
    fn selected_superseders<'m>(
        &self,
        r: usize,
        memo: &'m mut HashMap<usize, Vec<usize>>,
    ) -> &'m [usize] {
        let c = self.scc.comp[r];
        if c == NONE || (self.comp_selected[c] == NONE && self.covered_by[c] == NONE) {
            return &[];
        }
        // Post-order over the (acyclic) components above `c`.
        let mut stack = vec![(c, false)];
        while let Some((d, expanded)) = stack.pop() {
            if memo.contains_key(&d) {
                continue;
            }
            let holder = self.comp_selected[d];
            if holder != NONE {
                // Nothing above a selected patch is selected.
                memo.insert(d, vec![holder]);
                continue;
            }
            let preds = self.relevant_preds(d);
            if expanded {
                let mut found: Vec<usize> = preds
                    .iter()
                    .filter_map(|e| memo.get(e))
                    .flatten()
                    .copied()
                    .collect();
                found.sort_unstable();
                found.dedup();
                memo.insert(d, found);
            } else {
                stack.push((d, true));
                stack.extend(
                    preds
                        .into_iter()
                        .filter(|e| !memo.contains_key(e))
                        .map(|e| (e, false)),
                );
            }
        }
        memo.get(&c).map_or(&[], Vec::as_slice)
    }

    fn reason(&self, v: usize) -> (String, Reason) {
        let origin = self.origin.get(&v).copied().unwrap_or(Origin::Named);
        match origin {
            Origin::Named => ("named".to_string(), Reason::Named),
            Origin::Auto(k) => {
                let spec = self.specs.get(k).cloned().unwrap_or_default();
                (
                    format!("autoselected for {spec}"),
                    Reason::Autoselected { spec },
                )
            }
            Origin::Matched => {
                let product = self.g.patches[v].manifest.product.clone();
                let (version, node) = match self.target {
                    Some(t) => (
                        t.products.get(&product).cloned().unwrap_or_default(),
                        t.node.clone(),
                    ),
                    None => Default::default(),
                };
                (
                    format!("matches installed {product} {version} on node {node}"),
                    Reason::Matched {
                        product,
                        version,
                        node,
                    },
                )
            }
            Origin::Required { by, requirement } => {
                let by = self.g.names[by].to_string();
                let requirement = self.g.names[requirement].to_string();
                let text = if requirement == self.g.names[v] {
                    format!("required by {by}")
                } else {
                    format!("required by {by} (for {requirement}, which it supersedes)")
                };
                (text, Reason::Required { by, requirement })
            }
        }
    }

    fn finish(mut self) -> Selection {
        let patches = self.g.patches;
        let live: Vec<usize> = self
            .added
            .iter()
            .copied()
            .filter(|&v| self.selected[v])
            .collect();
        let local: HashMap<usize, usize> = live.iter().enumerate().map(|(i, &v)| (v, i)).collect();

        // Prerequisite edges: every selected patch that is a requirement of
        // `x`, or supersedes one, goes before `x`.
        let mut adj: Vec<Vec<usize>> = vec![Vec::new(); live.len()];
        let mut memo: HashMap<usize, Vec<usize>> = HashMap::new();
        for (xi, &x) in live.iter().enumerate() {
            for r in &patches[x].manifest.requires {
                let Some(rn) = self.g.node(r) else { continue };
                for s in self.selected_superseders(rn, &mut memo) {
                    if let Some(&si) = local.get(s)
                        && si != xi
                    {
                        adj[si].push(xi);
                    }
                }
            }
        }
        for list in &mut adj {
            list.sort_unstable();
            list.dedup();
        }

        // Topological order over the components of the prerequisite graph;
        // a cycle is installed as a block, its members by key.
        let mut deps = Scc::new(live.len());
        for i in 0..live.len() {
            deps.run(i, |u| adj[u].as_slice());
        }
        let comps = deps.members.len();
        for c in 0..comps {
            if !deps.cyclic[c] || deps.members[c].len() < 2 {
                continue;
            }
            let mut ids: Vec<&str> = deps.members[c]
                .iter()
                .map(|&i| patches[live[i]].id.as_str())
                .collect();
            ids.sort_unstable();
            let message = format!(
                "{} require one another (directly or through patches that supersede what they \
                 require), so no install order satisfies every requirement; they go in a fixed \
                 order",
                ids.join(", ")
            );
            self.problem(ProblemKind::PrerequisiteCycle, ids[0], message);
        }
        let key = |v: usize| {
            let (group, pos) = self.order_key.get(&v).copied().unwrap_or((PREREQUISITE, 0));
            (!patches[v].manifest.kernel, group, pos)
        };

        let mut comp_edges = Vec::new();
        for (u, list) in adj.iter().enumerate() {
            for &w in list {
                let (cu, cw) = (deps.comp[u], deps.comp[w]);
                if cu != cw {
                    comp_edges.push((cu, cw));
                }
            }
        }
        comp_edges.sort_unstable();
        comp_edges.dedup();
        let mut indegree = vec![0usize; comps];
        let mut comp_succ: Vec<Vec<usize>> = vec![Vec::new(); comps];
        for &(cu, cw) in &comp_edges {
            indegree[cw] += 1;
            comp_succ[cu].push(cw);
        }
        let comp_key: Vec<_> = deps
            .members
            .iter()
            .map(|m| m.iter().map(|&i| key(live[i])).min())
            .collect();
        let mut heap: BinaryHeap<_> = (0..comps)
            .filter(|&c| indegree[c] == 0)
            .map(|c| Reverse((comp_key[c], c)))
            .collect();
        let mut order = Vec::with_capacity(live.len());
        while let Some(Reverse((_, c))) = heap.pop() {
            let mut members: Vec<usize> = deps.members[c].iter().map(|&i| live[i]).collect();
            members.sort_by_key(|&v| key(v));
            order.extend(members);
            for &w in &comp_succ[c] {
                indegree[w] -= 1;
                if indegree[w] == 0 {
                    heap.push(Reverse((comp_key[w], w)));
                }
            }
        }

        let selected = order
            .into_iter()
            .map(|v| {
                let (reason, why) = self.reason(v);
                Selected {
                    id: patches[v].id.clone(),
                    reason,
                    why,
                }
            })
            .collect();

        let mut dropped_nodes: Vec<(usize, usize)> = self
            .dropped
            .iter()
            .map(|&(v, by)| (v, self.live(by)))
            .collect();
        dropped_nodes.sort_by_key(|&(v, _)| v);
        dropped_nodes.dedup_by_key(|&mut (v, _)| v);
        let dropped = dropped_nodes
            .into_iter()
            .filter(|&(v, _)| !self.selected[v])
            .map(|(v, by)| Dropped {
                id: self.g.names[v].to_string(),
                superseded_by: self.g.names[by].to_string(),
            })
            .collect();

        let mut problems: Vec<Problem> = Vec::new();
        let mut seen = HashSet::new();
        for pending in &self.pending {
            let problem = match pending {
                Pending::Ready(p) => p.clone(),
                Pending::SupersededExplicit { old, by } => {
                    let (old, by) = (self.g.names[*old], self.g.names[self.live(*by)]);
                    Problem {
                        kind: ProblemKind::SupersededExplicit,
                        id: old.to_string(),
                        message: format!(
                            "{old} was named, but {by} supersedes it and is also selected; \
                             {by} is kept and {old} left out"
                        ),
                    }
                }
            };
            if seen.insert(problem.clone()) {
                problems.push(problem);
            }
        }

        Selection {
            patches: selected,
            dropped,
            problems,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::engine::inventory::PatchState;
    use crate::engine::manifest::{Manifest, Restart, Severity};

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
            // Above every version the test inventories hold: no fixture
            // is a downgrade unless a test says so.
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

    fn inventory(
        node: &str,
        products: &[(&str, &str)],
        patches: &[(&str, PatchState)],
    ) -> Inventory {
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
        assert_eq!(kinds(&sel), [ProblemKind::PrerequisiteCycle]);
        assert_eq!(sel.problems[0].id, "A");
        let c = ids(&sel).iter().position(|&i| i == "C").unwrap();
        assert_eq!(c, 2, "C depends on the cycle, so it comes after it");
        assert_eq!(named(&depot, &["C"]), sel);
    }

    #[test]
    fn dangling_and_self_references_are_harmless() {
        let depot = [
            req(sup(patch("P1", "X11", 1), &["GONE", "P1"]), &["P1", "GONE"]),
            req(patch("P2", "X11", 1), &["P1"]),
        ];
        let sel = named(&depot, &["P2"]);
        assert_eq!(ids(&sel), ["P1", "P2"]);
        // P1 requires GONE, which P1 itself supersedes: satisfied.
        assert_eq!(kinds(&sel), [ProblemKind::SupersedesCycle]);
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
}
