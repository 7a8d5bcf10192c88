//! Depot benchmark: generates a large demo depot and prints a table of
//! cold index build, warm open, filter evaluation and fuzzy search per
//! keystroke, with a naive full re-score side by side for the ratio.
//!
//! Run with `scripts/bench` (or `cargo bench --bench depot -- --patches N`).
//! Figures are medians over repeated runs; machines are shared and noisy.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fuzzy_matcher::FuzzyMatcher;
use fuzzy_matcher::skim::SkimMatcherV2;
use patchdeck::engine::demo;
use patchdeck::engine::depot::Depot;
use patchdeck::engine::filter::FilterList;
use patchdeck::engine::fuzzy::{SearchLines, Searcher};
use patchdeck::engine::index::INDEX_FILE;

const QUERIES: &[&str] = &[
    "gwcoretl", "krnsched", "appcache", "x11fontc", "cryrsapa", "securjwt",
];

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not, and
    // then a small depot checks that the benchmark still works.
    let measuring = std::env::args().any(|a| a == "--bench");
    let mut patches = if measuring { 100_000usize } else { 500 };
    let mut dir: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--patches" => {
                patches = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--patches N")
            }
            "--dir" => dir = args.next().map(PathBuf::from),
            _ => {} // cargo passes --bench
        }
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = dir.unwrap_or_else(|| tmp.path().join("depot"));
    let existing = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    if existing < patches {
        let t = Instant::now();
        demo::write_depot(&dir, 1, patches).expect("writing the depot");
        eprintln!(
            "generated {patches} patches in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }

    let _ = std::fs::remove_file(dir.join(INDEX_FILE));
    let t = Instant::now();
    let depot = Depot::open(&dir).expect("open");
    let cold = t.elapsed();
    assert_eq!(depot.patches.len(), patches);

    let warm = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                let d = Depot::open(&dir).expect("open");
                assert_eq!(d.stats.read, 0, "warm open reads no patch file");
                t.elapsed()
            })
            .collect(),
    );

    let mut filter_rows = Vec::new();
    for expr in [
        "*.*,c=critical_patch",
        "gateway.core,r>=10.1.5,sev>=high",
        "*,c=security|firmware,d>=2025-01-01",
        "k*,hot=true",
    ] {
        let list = FilterList::parse_all(&[expr]).expect("filter parses");
        let mut hits = 0;
        let time = median(
            (0..21)
                .map(|_| {
                    let t = Instant::now();
                    hits = depot.patches.iter().filter(|p| list.matches(p)).count();
                    t.elapsed()
                })
                .collect(),
        );
        filter_rows.push((expr, hits, time));
    }

    // Fuzzy: each query typed one key at a time, on the whole depot.
    let lines = SearchLines::new(&depot.patches);
    let all: Vec<usize> = (0..depot.patches.len()).collect();
    let mut ours: Vec<Vec<Duration>> = vec![Vec::new(); 8];
    let mut naive: Vec<Vec<Duration>> = vec![Vec::new(); 8];
    let matcher = SkimMatcherV2::default();
    for _round in 0..3 {
        for q in QUERIES {
            let mut searcher = Searcher::new(lines.clone());
            for k in 1..=q.len() {
                let t = Instant::now();
                let hits = searcher.search(&q[..k], &all);
                ours[k - 1].push(t.elapsed());
                // Naive: score every line for every keystroke.
                let t = Instant::now();
                let mut n: Vec<(i64, usize)> = (0..lines.len())
                    .filter_map(|i| matcher.fuzzy_match(lines.line(i), &q[..k]).map(|s| (s, i)))
                    .collect();
                n.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
                naive[k - 1].push(t.elapsed());
                assert_eq!(
                    hits.len(),
                    n.len(),
                    "narrowing finds what a full scan finds"
                );
            }
        }
    }

    println!(
        "\npatchdeck depot benchmark: {patches} patches; filters on one core, opening and fuzzy search on {} cores\n",
        rayon::current_num_threads()
    );
    println!("| measure | median |");
    println!("|---|---|");
    println!(
        "| cold open, index built ({} files read) | {} |",
        patches,
        ms(cold)
    );
    println!("| warm open, from index | {} |", ms(warm));
    for (expr, hits, time) in &filter_rows {
        println!("| filter `{expr}` ({hits} hits) | {} |", ms(*time));
    }
    println!(
        "\nFuzzy search, {} 8-letter queries typed a key at a time, 3 rounds:\n",
        QUERIES.len()
    );
    println!("| keystroke | patchdeck median | patchdeck max | full re-score median | ratio |");
    println!("|---|---|---|---|---|");
    let mut all_ours = Vec::new();
    for k in 0..8 {
        let m = median(ours[k].clone());
        let mx = *ours[k].iter().max().expect("samples");
        let nm = median(naive[k].clone());
        all_ours.extend(ours[k].iter().copied());
        println!(
            "| {} | {} | {} | {} | {:.2} |",
            k + 1,
            ms(m),
            ms(mx),
            ms(nm),
            m.as_secs_f64() / nm.as_secs_f64()
        );
    }
    let broadest = *all_ours.iter().max().expect("samples");
    println!(
        "\nall keystrokes: median {}, broadest {}",
        ms(median(all_ours)),
        ms(broadest)
    );
}
