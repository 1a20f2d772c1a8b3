//! The one checked form in which a host name reaches a metric label or the log.
//!
//! Names come from DNS answers, TLS ClientHellos and HTTP request heads, all of
//! which the other end (or the traced process) controls. Anything outside the
//! host name alphabet is rejected rather than escaped: a name that needs
//! escaping is not a name any client can connect to, so dropping it loses
//! nothing, and there is then no escaping to get wrong in the exposition format
//! or the JSON log.

use std::fmt;

/// Longest name in presentation form, without the trailing dot (RFC 1035 2.3.4).
pub const MAX_NAME_LEN: usize = 253;
/// Longest label (RFC 1035 2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// A lowercase ASCII host name: labels of `[a-z0-9_-]`, 1 to 63 bytes each,
/// 1 to 253 bytes in all, no trailing dot, not an IPv4 literal.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hostname(String);

impl Hostname {
    /// Checks and normalises `raw`: strips one trailing dot and lowercases
    /// ASCII. Underscores are allowed (`_dmarc`, SRV-style names); punycode
    /// (`xn--...`) passes as the ASCII it is. Returns `None` for anything else:
    /// empty or overlong names and labels, empty labels (`a..b`), spaces,
    /// quotes, braces, `\`, `=`, control bytes, non-ASCII, and names whose last
    /// label is all digits (IPv4 literals such as `203.0.113.5`, which are
    /// addresses, not names; RFC 3696 2 rules out all-numeric top-level labels).
    pub fn parse(raw: &[u8]) -> Option<Hostname> {
        let raw = raw.strip_suffix(b".").unwrap_or(raw);
        if raw.is_empty() || raw.len() > MAX_NAME_LEN {
            return None;
        }
        let mut last_label_numeric = false;
        for label in raw.split(|&b| b == b'.') {
            if label.is_empty() || label.len() > MAX_LABEL_LEN {
                return None;
            }
            if !label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
            {
                return None;
            }
            last_label_numeric = label.iter().all(u8::is_ascii_digit);
        }
        if last_label_numeric {
            return None;
        }
        // Every byte is ASCII (checked above), so this cannot fail.
        let text = std::str::from_utf8(raw).ok()?;
        Some(Hostname(text.to_ascii_lowercase()))
    }

    /// [`Hostname::parse`] for text.
    pub fn parse_str(raw: &str) -> Option<Hostname> {
        Hostname::parse(raw.as_bytes())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The labels, leftmost first.
    pub fn labels(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.0.split('.')
    }
}

impl AsRef<str> for Hostname {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hostname({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        Hostname::parse(raw.as_bytes())
            .unwrap_or_else(|| panic!("{raw:?} should parse"))
            .as_str()
            .to_owned()
    }

    fn bad(raw: &[u8]) {
        assert_eq!(Hostname::parse(raw), None, "{raw:?} should be rejected");
    }

    #[test]
    fn normalises_case_and_trailing_dot() {
        assert_eq!(ok("API.Anthropic.COM."), "api.anthropic.com");
        assert_eq!(ok("localhost"), "localhost");
        assert_eq!(ok("_dmarc.example.com"), "_dmarc.example.com");
        assert_eq!(ok("xn--bcher-kva.example"), "xn--bcher-kva.example");
        assert_eq!(ok("a-1.b2.test"), "a-1.b2.test");
    }

    #[test]
    fn only_one_trailing_dot() {
        bad(b"example.com..");
        bad(b".");
        bad(b"");
        bad(b".example.com");
    }

    #[test]
    fn rejects_label_injection() {
        bad(b"evil\"} 1\n#");
        bad(b"evil\"} 1\n# HELP x");
        bad(b"a\x00b");
        bad(b"a..b");
        bad(b"a b.test");
        bad(b"a\\b.test");
        bad(b"a=b.test");
        bad(b"{a}.test");
        bad(b"a'b.test");
        bad(b"a\tb");
        bad(b"a\x7fb");
        bad("b\u{fc}cher.example".as_bytes());
        bad(b"\xff\xfe.test");
        bad(b"host:443");
        bad(b"[::1]");
        bad(b"a/b");
    }

    #[test]
    fn rejects_ip_literals() {
        bad(b"203.0.113.5");
        bad(b"127.0.0.1.");
        assert_eq!(ok("1.2.3.example"), "1.2.3.example");
        assert_eq!(ok("123abc"), "123abc");
    }

    #[test]
    fn bounds_lengths() {
        let label63 = "a".repeat(63);
        assert_eq!(ok(&format!("{label63}.test")), format!("{label63}.test"));
        bad(format!("{}.test", "a".repeat(64)).as_bytes());

        // 4 * 63 + 3 dots = 255 > 253; 3 * 63 + 61 + 3 dots = 253.
        let max = format!("{label63}.{label63}.{label63}.{}", "b".repeat(61));
        assert_eq!(max.len(), 253);
        assert_eq!(ok(&max), max);
        assert_eq!(ok(&format!("{max}.")), max);
        bad(format!("{label63}.{label63}.{label63}.{}", "b".repeat(62)).as_bytes());
        bad(&vec![b'a'; 100_000]);
    }

    #[test]
    fn labels_iterate_leftmost_first() {
        let h = Hostname::parse_str("api.model.test").unwrap();
        assert_eq!(h.labels().collect::<Vec<_>>(), ["api", "model", "test"]);
        assert_eq!(h.labels().next_back(), Some("test"));
        assert_eq!(h.to_string(), "api.model.test");
    }
}
