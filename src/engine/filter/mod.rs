//! The filter language: which patches an operator means.
//!
//! A filter is `PRODUCT[.FILESET][,QUALIFIER]...`, modelled on SD-UX software
//! selections. PRODUCT and FILESET are shell globs; each QUALIFIER is
//! `KEY OP VALUE[|VALUE]...`, where `|` means "or" and repeating a qualifier
//! means "and". A [`FilterList`] matches a patch when any of its filters
//! does; an empty list matches every patch.
//!
//! Filters are parsed once (globs compiled, typed values checked) and then
//! evaluated without allocating, so one can be run over a whole depot cheaply.
//! The operator's reference is `docs/filters.md`.

mod error;
mod model;
mod parse;
mod pattern;
#[cfg(test)]
mod tests;

pub use error::FilterError;
pub use model::{Filter, FilterList};
