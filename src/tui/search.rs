//! The fuzzy search worker: a thread that takes queries and answers with
//! ranked hits, so typing never waits for matching. Bursts of keystrokes
//! are merged (only the newest pending query is run), and the console drops
//! any answer that is not for its current query.

use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::mpsc::UnboundedSender;

use crate::engine::fuzzy::{Hit, SearchLines, Searcher};

pub struct Request {
    pub generation: u64,
    pub query: String,
    pub candidates: Arc<Vec<usize>>,
}

pub struct Answer {
    pub generation: u64,
    pub hits: Vec<Hit>,
}

/// Starts the worker; it ends when the returned sender is dropped.
pub fn spawn(lines: SearchLines, answers: UnboundedSender<Answer>) -> mpsc::Sender<Request> {
    let (tx, rx) = mpsc::channel::<Request>();
    std::thread::Builder::new()
        .name("fuzzy-search".into())
        .spawn(move || {
            let mut searcher = Searcher::new(lines);
            let mut candidates: Option<Arc<Vec<usize>>> = None;
            while let Ok(mut request) = rx.recv() {
                // Merge a burst: skip to the newest request waiting.
                while let Ok(newer) = rx.try_recv() {
                    request = newer;
                }
                if !candidates
                    .as_ref()
                    .is_some_and(|c| Arc::ptr_eq(c, &request.candidates))
                {
                    searcher.reset();
                    candidates = Some(request.candidates.clone());
                }
                let hits = searcher.search(&request.query, &request.candidates);
                if answers
                    .send(Answer {
                        generation: request.generation,
                        hits,
                    })
                    .is_err()
                {
                    break;
                }
            }
        })
        .expect("spawning the search thread");
    tx
}
