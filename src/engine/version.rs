//! Version strings and their ordering.
//!
//! Versions compare field by field. Fields are separated by `.`, `-`, `_`,
//! `+` or `~`; two numeric fields compare as numbers (so `1.10 > 1.9`), any
//! other pair compares as text, and a numeric field sorts before a textual one
//! (`1.0.1 < 1.0.beta`). A missing field counts as `0`, so `1.2 == 1.2.0`.

use std::cmp::Ordering;

const SEPARATORS: &[char] = &['.', '-', '_', '+', '~'];

/// Compares two version strings field by field.
pub fn compare(a: &str, b: &str) -> Ordering {
    let mut left = a.split(SEPARATORS);
    let mut right = b.split(SEPARATORS);
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (l, r) => {
                let ord = compare_field(l.unwrap_or("0"), r.unwrap_or("0"));
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

/// True when both strings name the same version (`1.2` and `1.02.0` do).
pub fn equal(a: &str, b: &str) -> bool {
    compare(a, b) == Ordering::Equal
}

fn is_numeric(field: &str) -> bool {
    !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit())
}

fn compare_field(a: &str, b: &str) -> Ordering {
    match (is_numeric(a), is_numeric(b)) {
        (true, true) => {
            // Compare digit strings without parsing, so huge fields never overflow.
            let a = a.trim_start_matches('0');
            let b = b.trim_start_matches('0');
            a.len().cmp(&b.len()).then_with(|| a.cmp(b))
        }
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_fields_compare_as_numbers() {
        assert_eq!(compare("1.10", "1.9"), Ordering::Greater);
        assert_eq!(compare("2.0", "10.0"), Ordering::Less);
        assert_eq!(compare("B.11.31", "B.11.23"), Ordering::Greater);
    }

    #[test]
    fn missing_fields_count_as_zero() {
        assert!(equal("1.2", "1.2.0"));
        assert!(equal("1.02", "1.2"));
        assert_eq!(compare("1.2", "1.2.1"), Ordering::Less);
    }

    #[test]
    fn numbers_sort_before_words() {
        assert_eq!(compare("1.0.1", "1.0.beta"), Ordering::Less);
        assert_eq!(compare("1.0-rc1", "1.0-rc2"), Ordering::Less);
    }

    #[test]
    fn huge_fields_do_not_overflow() {
        assert_eq!(
            compare("1.99999999999999999999999", "1.100000000000000000000000"),
            Ordering::Less
        );
    }
}
