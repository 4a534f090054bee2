//! Text users send: how long each piece may be, which characters it may hold, and how much of
//! it an error may quote back. Every string field of a job is checked here, so both stores
//! receive only what both can hold.

/// Most characters of user input an error message quotes.
pub const QUOTED: usize = 80;

/// `s` quoted for an error message: escaped, and cut after [`QUOTED`] characters.
pub fn quote(s: &str) -> String {
    let kept: String = s.chars().take(QUOTED).collect();
    if kept.len() < s.len() {
        format!("{kept:?}…")
    } else {
        format!("{kept:?}")
    }
}

/// `s` as a field name in an error: cut after [`QUOTED`] characters, not escaped.
pub fn field_name(s: &str) -> String {
    let kept: String = s.chars().take(QUOTED).collect();
    if kept.len() < s.len() {
        format!("{kept}…")
    } else {
        kept
    }
}

/// Which control characters a text may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controls {
    /// None: a single-line value (a name, a schedule, a URL).
    Refused,
    /// Any but NUL, which PostgreSQL cannot store (a request body).
    AllButNul,
}

/// Checks one text value: at most `max` bytes, and only the control characters allowed.
pub fn check(value: &str, max: usize, controls: Controls) -> Result<(), String> {
    if value.len() > max {
        return Err(format!("is longer than {max} bytes ({})", value.len()));
    }
    let bad = match controls {
        Controls::Refused => value.chars().find(|c| c.is_control()),
        Controls::AllButNul => value.chars().find(|c| *c == '\0'),
    };
    match bad {
        Some(c) => Err(format!(
            "contains the control character U+{:04X}, which is not allowed here",
            c as u32
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_short_and_escaped() {
        assert_eq!(quote("abc"), r#""abc""#);
        assert_eq!(quote("a\nb"), r#""a\nb""#);
        let long = "x".repeat(60_000);
        let q = quote(&long);
        assert!(q.chars().count() <= QUOTED + 3, "{}", q.len());
        assert!(q.ends_with('…'));
        assert_eq!(field_name(&long).chars().count(), QUOTED + 1);
        assert_eq!(
            quote(&"é".repeat(QUOTED)),
            format!("{:?}", "é".repeat(QUOTED))
        );
    }

    #[test]
    fn control_characters_and_lengths() {
        assert!(check("0 * * * * *", 256, Controls::Refused).is_ok());
        for bad in ["a\0b", "a\nb", "a\tb", "a\rb", "a\u{7f}b", "a\u{85}b"] {
            assert!(check(bad, 256, Controls::Refused).is_err(), "{bad:?}");
        }
        assert!(check("line\n\tline\r\n", 256, Controls::AllButNul).is_ok());
        assert!(
            check("a\0", 256, Controls::AllButNul)
                .unwrap_err()
                .contains("U+0000")
        );
        assert!(check(&"a".repeat(257), 256, Controls::Refused).is_err());
        assert!(check(&"a".repeat(256), 256, Controls::Refused).is_ok());
    }
}
