//! One component per pane: each owns how it draws its part of [`App`].

pub mod depot;
pub mod filter;
pub mod groups;
pub mod history;
pub mod replication;

use ratatui::widgets::{Block, BorderType, Borders};

use crate::tui::theme::Theme;

/// The frame every pane draws in, highlighted when it has the focus.
pub fn pane_block(theme: &Theme, title: String, focused: bool) -> Block<'static> {
    Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Plain)
        .border_set(theme.border_set())
        .border_style(if focused {
            theme.focus_border
        } else {
            theme.border
        })
        .title(title)
}
