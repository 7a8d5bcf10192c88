//! The depot as a graph, indexed once per call: ids, the `supersedes` edges
//! both ways, and strongly connected components so cycles act as one chain.

use std::collections::HashMap;

use crate::engine::patch::Patch;
use crate::engine::requirement;

/// "No node / no component" in the index-based tables below.
pub(super) const NONE: usize = usize::MAX;

/// The depot indexed once per call. Nodes `0..patches.len()` are the depot
/// patches (by slice position); ids that only appear in `supersedes` lists
/// get nodes after them. Edges run from a patch to the ids it supersedes.
pub(super) struct Graph<'a> {
    pub(super) patches: &'a [Patch],
    pub(super) names: Vec<&'a str>,
    pub(super) index: HashMap<&'a str, usize>,
    /// False for a later patch repeating an earlier id: it is ignored.
    pub(super) primary: Vec<bool>,
    pub(super) fwd_start: Vec<usize>,
    pub(super) fwd: Vec<usize>,
    pub(super) rev_start: Vec<usize>,
    pub(super) rev: Vec<usize>,
}

impl<'a> Graph<'a> {
    pub(super) fn new(patches: &'a [Patch]) -> Graph<'a> {
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

    pub(super) fn depot_len(&self) -> usize {
        self.patches.len()
    }

    pub(super) fn nodes(&self) -> usize {
        self.names.len()
    }

    pub(super) fn node(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// A primary depot patch named `id`.
    pub(super) fn patch_node(&self, id: &str) -> Option<usize> {
        self.node(id).filter(|&v| v < self.depot_len())
    }

    /// Ids `v` supersedes directly.
    pub(super) fn succ(&self, v: usize) -> &[usize] {
        if v < self.depot_len() {
            &self.fwd[self.fwd_start[v]..self.fwd_start[v + 1]]
        } else {
            &[]
        }
    }

    /// Depot patches superseding `v` directly.
    pub(super) fn preds(&self, v: usize) -> &[usize] {
        &self.rev[self.rev_start[v]..self.rev_start[v + 1]]
    }

    /// Orders by age: newest is greatest (`released`, then id).
    pub(super) fn age(&self, v: usize) -> (chrono::NaiveDate, &'a str) {
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
pub(super) struct Scc {
    pub(super) index: Vec<usize>,
    pub(super) low: Vec<usize>,
    pub(super) comp: Vec<usize>,
    pub(super) on_stack: Vec<bool>,
    pub(super) stack: Vec<usize>,
    pub(super) counter: usize,
    pub(super) members: Vec<Vec<usize>>,
    /// More than one member, or a member with an edge to itself.
    pub(super) cyclic: Vec<bool>,
}

impl Scc {
    pub(super) fn new(nodes: usize) -> Scc {
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

    pub(super) fn open(&mut self, v: usize) {
        self.index[v] = self.counter;
        self.low[v] = self.counter;
        self.counter += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
    }

    /// The component of `root`, computing it (and everything reachable from
    /// it) if needed.
    pub(super) fn run<'g>(&mut self, root: usize, succ: impl Fn(usize) -> &'g [usize]) -> usize {
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
