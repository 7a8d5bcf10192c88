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

mod graph;
mod request;
mod resolver;
#[cfg(test)]
mod tests;

pub use request::{
    Dropped, Problem, ProblemKind, Reason, Request, Selected, Selection, no_narrowing,
};
pub use resolver::resolve;
