//! The engine: everything patchdeck knows and decides, with no knowledge of
//! the terminal. The TUI and CLI are thin clients on top of it.

pub mod archive;
pub mod components;
pub mod console;
pub mod demo;
pub mod depot;
pub mod doctor;
pub mod drift;
pub mod filter;
pub mod fleet;
pub mod fuzzy;
pub mod groups;
pub mod guard;
pub mod history;
pub mod index;
pub mod inventory;
pub mod journal;
pub mod lab;
pub mod manifest;
pub mod mirror;
pub mod node;
pub mod offline;
pub mod ops;
pub mod patch;
pub mod protocol;
pub mod replicate;
pub mod requirement;
pub mod rollout;
pub mod select;
pub mod sqlite;
pub mod status;
pub mod text;
pub mod tomlspan;
pub mod transport;
pub mod trust;
pub mod version;
