//! The resolver: autoselection, matching what a target has installed,
//! supersession, prerequisites and install order (docs/selection.md).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use super::graph::{Graph, NONE, Scc};
use super::request::{Dropped, Problem, ProblemKind, Reason, Request, Selected, Selection};
use crate::engine::inventory::Inventory;
use crate::engine::patch::Patch;
use crate::engine::requirement;
use crate::engine::version::base_version_satisfied;

/// Resolves `request` against the depot `patches`.
pub fn resolve(patches: &[Patch], request: &Request) -> Selection {
    Resolver::new(patches, request).run()
}

/// How a patch entered the selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    Named,
    /// Autoselected by the spec at this position.
    Auto(usize),
    Matched,
    Required {
        by: usize,
        requirement: usize,
    },
}

pub(super) enum Outcome {
    Added,
    Already,
    /// Refused: this selected patch supersedes it.
    Superseded(usize),
}

/// A problem whose message is written at the end, once it is known which
/// patch finally replaced the superseded one.
pub(super) enum Pending {
    Ready(Problem),
    SupersededExplicit { old: usize, by: usize },
}

/// Install-order key groups.
pub(super) const NAMED: u8 = 0;
pub(super) const CANDIDATE: u8 = 1;
pub(super) const PREREQUISITE: u8 = 2;

pub(super) struct Resolver<'a> {
    pub(super) g: Graph<'a>,
    pub(super) specs: &'a [String],
    pub(super) autoselect: bool,
    pub(super) target: Option<&'a Inventory>,
    pub(super) narrow: &'a dyn Fn(&Patch) -> bool,
    /// Supersession components, computed lazily over the nodes touched.
    pub(super) scc: Scc,
    pub(super) reported_comps: usize,
    /// Per node: currently selected.
    pub(super) selected: Vec<bool>,
    /// Per component: its selected member. At most one, since the members
    /// of a cycle supersede one another.
    pub(super) comp_selected: Vec<usize>,
    /// Per component: the patch whose selection made it superseded. The set
    /// of covered components is exactly what the current selection
    /// supersedes; a patch found here may since have been replaced (`live`).
    pub(super) covered_by: Vec<usize>,
    /// Selected patches later replaced by a superseder → that superseder.
    pub(super) removed_by: HashMap<usize, usize>,
    pub(super) origin: HashMap<usize, Origin>,
    pub(super) order_key: HashMap<usize, (u8, usize)>,
    /// Every patch ever selected, in the order selected.
    pub(super) added: Vec<usize>,
    /// (candidate, the selected patch that superseded it).
    pub(super) dropped: Vec<(usize, usize)>,
    pub(super) pending: Vec<Pending>,
    /// Per node: an installed depot patch on the target that supersedes it.
    pub(super) installed_by: Vec<usize>,
    pub(super) has_memo: HashMap<(&'a str, Option<&'a str>), bool>,
    pub(super) provider_memo: HashMap<usize, Option<usize>>,
    /// Visit marks for backward walks, by generation.
    pub(super) stamp: Vec<u32>,
    pub(super) generation: u32,
}

impl<'a> Resolver<'a> {
    pub(super) fn new(patches: &'a [Patch], request: &'a Request<'a>) -> Resolver<'a> {
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

    pub(super) fn problem(&mut self, kind: ProblemKind, id: &str, message: String) {
        self.pending.push(Pending::Ready(Problem {
            kind,
            id: id.to_string(),
            message,
        }));
    }

    pub(super) fn run(mut self) -> Selection {
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
    pub(super) fn applicable(&mut self, v: usize) -> bool {
        self.refusal(v).is_none() && (self.narrow)(&self.g.patches[v])
    }

    /// Why patch `v` does not apply to the target, if it does not.
    pub(super) fn refusal(&mut self, v: usize) -> Option<String> {
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
    pub(super) fn comp(&mut self, v: usize) -> usize {
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
    pub(super) fn live(&self, mut v: usize) -> usize {
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
    pub(super) fn add(&mut self, v: usize, origin: Origin, key: (u8, usize)) -> Outcome {
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
    pub(super) fn satisfied_by_selection(&self, v: usize) -> bool {
        if self.selected[v] {
            return true;
        }
        let c = self.scc.comp[v];
        c != NONE && (self.comp_selected[c] != NONE || self.covered_by[c] != NONE)
    }

    /// The target has `id` installed, or an installed patch superseding it:
    /// the one rule of [`requirement`], over the depot's graph.
    pub(super) fn satisfied_by_target(&self, id: &str) -> bool {
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

    pub(super) fn next_generation(&mut self) -> u32 {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.generation = 1;
        }
        self.generation
    }

    /// The depot patch to install for requirement `r`: the newest top of
    /// the chains above it (`r` itself when nothing supersedes it).
    pub(super) fn provider(&mut self, r: usize) -> Option<usize> {
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
    pub(super) fn require(&mut self, x: usize) {
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
    pub(super) fn relevant_preds(&self, c: usize) -> Vec<usize> {
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
    pub(super) fn selected_superseders<'m>(
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

    pub(super) fn reason(&self, v: usize) -> (String, Reason) {
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

    pub(super) fn finish(mut self) -> Selection {
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
                // The depot lists such a patch as broken; a depot built
                // another way still gets the problem named, not a silent pass.
                if *r == patches[x].id {
                    let message = format!(
                        "{r} requires itself, so no install order satisfies its requirement"
                    );
                    self.problem(ProblemKind::PrerequisiteCycle, r, message);
                    continue;
                }
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
