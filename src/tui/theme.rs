//! Colour themes: `themes/*.toml` compiled in, plus user themes from the
//! config directory. A theme names a style per role and whether borders and
//! symbols must be plain ASCII.

use std::collections::BTreeMap;

use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::border;
use serde::Deserialize;

const BUILTIN: &[(&str, &str)] = &[
    ("default", include_str!("../../themes/default.toml")),
    ("mono", include_str!("../../themes/mono.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

/// ASCII box drawing for terminals without line-drawing characters.
pub const ASCII_BORDER: border::Set = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StyleSpec {
    fg: Option<String>,
    bg: Option<String>,
    #[serde(default)]
    modifiers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: String,
    #[serde(default)]
    ascii: bool,
    #[serde(default)]
    styles: BTreeMap<String, StyleSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub ascii: bool,
    /// Highlight only the start of a selected list row (the mark and the
    /// id) rather than the whole row. Set by the serial profile: on a
    /// VT220 changing a cell's attributes means sending the cell again, so
    /// a whole-row highlight costs two full rows (about 160 bytes, 0.17 s
    /// at 9600 baud) on every cursor move.
    pub compact_selection: bool,
    /// Draw the frame of a pane that is alone on the screen (narrower than
    /// side by side) with the plain border style even when it has the
    /// focus: there is no other pane to tell it from, and on a serial line
    /// a bold frame costs about ten bytes a row. Set by the serial profile.
    pub plain_lone_frame: bool,
    pub base: Style,
    pub title: Style,
    pub border: Style,
    pub focus_border: Style,
    pub header: Style,
    pub selected: Style,
    pub marked: Style,
    pub matched: Style,
    pub dim: Style,
    pub error: Style,
    pub ok: Style,
    pub critical: Style,
    pub high: Style,
    pub key: Style,
}

impl Theme {
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(n, _)| *n)
    }

    /// A built-in theme by name, or a user theme from `dir/NAME.toml`.
    pub fn load(name: &str, user_dir: Option<&std::path::Path>) -> Result<Theme, String> {
        if let Some(dir) = user_dir {
            let path = dir.join(format!("{name}.toml"));
            if path.is_file() {
                let text = crate::engine::text::read_file(&path).map_err(|e| e.to_string())?;
                return Theme::parse(&text).map_err(|e| format!("{}: {e}", path.display()));
            }
        }
        match BUILTIN.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => Theme::parse(text),
            None => Err(format!(
                "unknown theme {name:?}; expected one of {} or a file {name}.toml in the themes directory",
                Theme::builtin_names().collect::<Vec<_>>().join(", ")
            )),
        }
    }

    pub fn default_theme() -> Theme {
        Theme::parse(BUILTIN[0].1).expect("built-in theme parses")
    }

    pub fn mono() -> Theme {
        Theme::parse(BUILTIN[1].1).expect("built-in theme parses")
    }

    pub fn parse(text: &str) -> Result<Theme, String> {
        let file: ThemeFile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| crate::engine::tomlspan::line_of(text, s.start));
            format!("line {}: {}", line.unwrap_or(0), e.message().trim())
        })?;
        let style = |role: &str| -> Result<Style, String> {
            match file.styles.get(role) {
                Some(spec) => to_style(spec).map_err(|e| format!("style {role}: {e}")),
                None => Ok(Style::default()),
            }
        };
        Ok(Theme {
            name: file.name.clone(),
            ascii: file.ascii,
            compact_selection: false,
            plain_lone_frame: false,
            base: style("base")?,
            title: style("title")?,
            border: style("border")?,
            focus_border: style("focus_border")?,
            header: style("header")?,
            selected: style("selected")?,
            marked: style("marked")?,
            matched: style("match")?,
            dim: style("dim")?,
            error: style("error")?,
            ok: style("ok")?,
            critical: style("critical")?,
            high: style("high")?,
            key: style("key")?,
        })
    }

    pub fn border_set(&self) -> border::Set<'static> {
        if self.ascii {
            ASCII_BORDER
        } else {
            border::PLAIN
        }
    }

    /// The mark shown for a marked row.
    pub fn mark(&self, marked: bool) -> &'static str {
        if marked { "[x]" } else { "[ ]" }
    }
}

fn to_style(spec: &StyleSpec) -> Result<Style, String> {
    let mut style = Style::default();
    if let Some(fg) = &spec.fg {
        style = style.fg(colour(fg)?);
    }
    if let Some(bg) = &spec.bg {
        style = style.bg(colour(bg)?);
    }
    for m in &spec.modifiers {
        style = style.add_modifier(match m.as_str() {
            "bold" => Modifier::BOLD,
            "dim" => Modifier::DIM,
            "italic" => Modifier::ITALIC,
            "underlined" => Modifier::UNDERLINED,
            "reversed" => Modifier::REVERSED,
            other => {
                return Err(format!(
                    "unknown modifier {other:?}; expected bold, dim, italic, underlined, reversed"
                ));
            }
        });
    }
    Ok(style)
}

fn colour(name: &str) -> Result<Color, String> {
    name.parse::<Color>()
        .map_err(|_| format!("unknown colour {name:?}; expected a name like cyan or #rrggbb"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_theme_parses() {
        for name in Theme::builtin_names() {
            let theme = Theme::load(name, None).unwrap();
            assert_eq!(theme.name, name);
        }
    }

    #[test]
    fn mono_uses_no_colour() {
        let t = Theme::mono();
        for s in [
            t.base, t.title, t.selected, t.marked, t.matched, t.error, t.critical, t.key,
        ] {
            assert_eq!((s.fg, s.bg), (None, None), "{s:?}");
        }
        assert!(t.ascii);
    }

    #[test]
    fn bad_colour_is_named() {
        let err = Theme::parse("name = \"x\"\n[styles]\ntitle = { fg = \"chartreuse-ish\" }\n")
            .unwrap_err();
        assert!(err.contains("chartreuse-ish"), "{err}");
    }
}
