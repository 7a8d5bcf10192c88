//! Fuzzy search over the depot: one search line per patch (id, title,
//! product, categories), scored with fuzzy-matcher's Skim algorithm.
//!
//! Two things keep a keystroke cheap on 100,000 patches: a byte-level check
//! that the query's letters occur in order (most lines fail it without being
//! scored), and, when the new query extends the previous one, re-scoring
//! only the previous matches, since a line that did not match `ab` cannot
//! match `abc`. Match positions are computed only for rows on screen.

use std::sync::Arc;

use fuzzy_matcher::FuzzyMatcher;
use fuzzy_matcher::skim::SkimMatcherV2;
use rayon::prelude::*;

use crate::engine::patch::Patch;

/// The search lines, built once per depot load and shared with workers.
#[derive(Debug, Clone, Default)]
pub struct SearchLines {
    lines: Arc<Vec<String>>,
    /// ASCII-lowercased copies for the in-order pre-check.
    folded: Arc<Vec<Vec<u8>>>,
}

impl SearchLines {
    pub fn new(patches: &[Patch]) -> SearchLines {
        let lines: Vec<String> = patches.iter().map(search_line).collect();
        let folded = lines
            .iter()
            .map(|l| l.to_ascii_lowercase().into_bytes())
            .collect();
        SearchLines {
            lines: Arc::new(lines),
            folded: Arc::new(folded),
        }
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn line(&self, i: usize) -> &str {
        &self.lines[i]
    }
}

/// `ID TITLE PRODUCT CATEGORIES…`: id first so its positions are the first
/// characters, which the depot pane highlights.
pub fn search_line(p: &Patch) -> String {
    let mut line = format!("{} {} {}", p.id, p.manifest.title, p.manifest.product);
    if let Some(fs) = &p.manifest.fileset {
        line.push('.');
        line.push_str(fs);
    }
    for c in &p.categories {
        line.push(' ');
        line.push_str(c);
    }
    line
}

/// Lines longer than this many characters are scored with the matcher's
/// linear-time alignment instead of its full dynamic program (the crate's
/// `element_limit`; the program uses two rows per line when only scoring).
/// The full program costs ~1 µs on a 90-character line, which on 100,000
/// lines is several frames per keystroke; the linear one finds the same
/// matches and a compact alignment, a few times faster. The choice depends
/// only on the line, so narrowing a query gives the same hits as a fresh
/// search.
const FULL_SCORING_MAX_CHARS: usize = 48;

fn matcher() -> SkimMatcherV2 {
    SkimMatcherV2::default().element_limit(2 * (FULL_SCORING_MAX_CHARS + 1))
}

/// One ranked hit: the line's index and its score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub index: usize,
    pub score: i64,
}

/// A fuzzy searcher that remembers its last query to narrow the next one.
pub struct Searcher {
    lines: SearchLines,
    matcher: SkimMatcherV2,
    last: Option<(String, Vec<usize>)>,
}

impl Searcher {
    pub fn new(lines: SearchLines) -> Searcher {
        Searcher {
            lines,
            matcher: matcher(),
            last: None,
        }
    }

    pub fn lines(&self) -> &SearchLines {
        &self.lines
    }

    /// Ranks `candidates` (indexes into the lines) against `query`: best
    /// score first, ties in candidate order. An empty query keeps them all
    /// in order. `candidates` must be the same set between calls for the
    /// narrowing to apply; call [`Searcher::reset`] when it changes.
    pub fn search(&mut self, query: &str, candidates: &[usize]) -> Vec<Hit> {
        let query = query.trim();
        if query.is_empty() {
            self.last = None;
            return candidates
                .iter()
                .map(|&index| Hit { index, score: 0 })
                .collect();
        }
        let pool: &[usize] = match &self.last {
            Some((prev, matched)) if !prev.is_empty() && query.starts_with(prev.as_str()) => {
                matched
            }
            _ => candidates,
        };
        let needle: Vec<u8> = query
            .bytes()
            .filter(|b| *b != b' ')
            .map(|b| b.to_ascii_lowercase())
            .collect();
        // Scoring is ~1 µs a line; on a broad query that is most of the
        // keystroke, so it runs on every core. Order is kept for stable ties.
        let (lines, folded, matcher) = (&self.lines.lines, &self.lines.folded, &self.matcher);
        let mut hits: Vec<Hit> = pool
            .par_iter()
            .with_min_len(4096)
            .filter(|&&i| in_order(&folded[i], &needle))
            .filter_map(|&i| {
                matcher
                    .fuzzy_match(&lines[i], query)
                    .map(|score| Hit { index: i, score })
            })
            .collect();
        // Keep the pool in candidate order so ties stay stable.
        let mut matched: Vec<usize> = hits.iter().map(|h| h.index).collect();
        matched.par_sort_unstable();
        self.last = Some((query.to_string(), matched));
        hits.par_sort_unstable_by(|a, b| b.score.cmp(&a.score).then(a.index.cmp(&b.index)));
        hits
    }

    /// Forgets the previous query (the candidate set changed).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

/// Character positions of `query`'s match in `line`, for highlighting the
/// few rows on screen.
pub fn match_positions(line: &str, query: &str) -> Vec<usize> {
    match matcher().fuzzy_indices(line, query.trim()) {
        Some((_, positions)) => positions,
        None => Vec::new(),
    }
}

/// True when every byte of `needle` occurs in `hay` in order. Non-ASCII
/// bytes compare as they are, so the check never rejects a real match.
fn in_order(hay: &[u8], needle: &[u8]) -> bool {
    let mut rest = hay;
    for &b in needle {
        match memchr_pos(rest, b) {
            Some(at) => rest = &rest[at + 1..],
            None => return false,
        }
    }
    true
}

fn memchr_pos(hay: &[u8], b: u8) -> Option<usize> {
    hay.iter().position(|&x| x == b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::demo;

    fn patches() -> Vec<Patch> {
        demo::generate(1, 200)
            .into_iter()
            .map(|(m, _)| {
                let id = m.id.clone().unwrap_or_default();
                Patch::new(id.clone(), format!("{id}.patch"), m)
            })
            .collect()
    }

    #[test]
    fn narrowing_gives_the_same_hits_as_a_fresh_search() {
        let patches = patches();
        let all: Vec<usize> = (0..patches.len()).collect();
        let mut incremental = Searcher::new(SearchLines::new(&patches));
        let query = "gwcoretls";
        for end in 1..=query.len() {
            let typed = incremental.search(&query[..end], &all);
            let mut fresh = Searcher::new(SearchLines::new(&patches));
            assert_eq!(
                typed,
                fresh.search(&query[..end], &all),
                "after {:?}",
                &query[..end]
            );
        }
    }

    #[test]
    fn best_match_first_and_positions_point_at_it() {
        let patches = patches();
        let all: Vec<usize> = (0..patches.len()).collect();
        let mut s = Searcher::new(SearchLines::new(&patches));
        let target = &patches[17].id;
        let hits = s.search(target, &all);
        assert_eq!(hits[0].index, 17, "exact id ranks first");
        let pos = match_positions(s.lines().line(17), target);
        assert_eq!(pos, (0..target.chars().count()).collect::<Vec<_>>());
    }

    #[test]
    fn empty_query_keeps_everything_in_order() {
        let patches = patches();
        let some = vec![5, 3, 9];
        let mut s = Searcher::new(SearchLines::new(&patches));
        let hits: Vec<usize> = s.search("  ", &some).iter().map(|h| h.index).collect();
        assert_eq!(hits, some);
    }

    #[test]
    fn in_order_check_is_a_superset_of_matching() {
        assert!(in_order(b"krn_1001 kernel core", b"krnc"));
        assert!(!in_order(b"krn_1001 kernel core", b"zz"));
    }
}
