//! Where a value sits in a TOML file, for errors found after parsing (a
//! duplicate id, a missing directory, a bad payload path): the line of the
//! value itself, not of the first similar-looking text.

use toml::de::{DeTable, DeValue};

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// One step into a TOML document: a table key or an array index.
#[derive(Debug, Clone, Copy)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// The 1-based line of the value at `path` (e.g. `[Key("node"), Index(3),
/// Key("root")]`), or `None` when the text does not parse or has no such
/// value.
pub fn line_at(text: &str, path: &[Seg]) -> Option<usize> {
    offset_at(text, path).map(|o| line_of(text, o))
}

/// The byte offset where the value at `path` starts.
pub fn offset_at(text: &str, path: &[Seg]) -> Option<usize> {
    let table = DeTable::parse(text).ok()?;
    let mut span = table.span();
    let root = DeValue::Table(table.into_inner());
    let mut here = &root;
    for seg in path {
        let next = match seg {
            Seg::Key(k) => here.get(*k)?,
            Seg::Index(i) => here.get(*i)?,
        };
        span = next.span();
        here = next.get_ref();
    }
    Some(span.start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_of_the_fourth_table_is_its_own() {
        let text = "a = 1\n[[files]]\npath = \"x\"\n[[files]]\npath = \"y\"\n\n[[files]]\nmode = 1\npath = \"z\"\n";
        assert_eq!(
            line_at(text, &[Seg::Key("files"), Seg::Index(0), Seg::Key("path")]),
            Some(3)
        );
        assert_eq!(
            line_at(text, &[Seg::Key("files"), Seg::Index(2), Seg::Key("path")]),
            Some(9)
        );
        assert_eq!(line_at(text, &[Seg::Key("files"), Seg::Index(3)]), None);
        assert_eq!(line_at("not toml ===", &[Seg::Key("a")]), None);
    }
}
