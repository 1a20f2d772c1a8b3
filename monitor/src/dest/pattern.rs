//! Host name and path patterns shared by the destination and path
//! catalogs: a label or segment is literal text or has one `*`, which stands
//! for at least one byte; `*.suffix` also matches any deeper name.

use super::hostname::Hostname;

/// A segment (of a path) or label (of a host) pattern; `*` is `Glob("", "")`.
#[derive(Debug, Clone)]
pub enum Piece {
    Literal(String),
    Glob(String, String),
}

impl Piece {
    pub fn parse(text: &str) -> Result<Piece, &'static str> {
        match text.split_once('*') {
            None => Ok(Piece::Literal(text.to_owned())),
            Some((_, after)) if after.contains('*') => Err("at most one `*` per segment or label"),
            Some((pre, suf)) => Ok(Piece::Glob(pre.to_owned(), suf.to_owned())),
        }
    }

    /// `*` stands for at least one byte.
    pub fn matches(&self, text: &str) -> bool {
        match self {
            Piece::Literal(l) => l == text,
            Piece::Glob(pre, suf) => {
                text.len() > pre.len() + suf.len()
                    && text.starts_with(pre.as_str())
                    && text.ends_with(suf.as_str())
            }
        }
    }

    pub fn literal_len(&self) -> usize {
        match self {
            Piece::Literal(l) => l.len(),
            Piece::Glob(pre, suf) => pre.len() + suf.len(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HostPattern {
    /// Labels rightmost first, without a leading `*.`.
    pub labels: Vec<Piece>,
    /// The pattern started with `*.`: one or more further labels.
    pub any_subdomain: bool,
    pub exact: bool,
    pub literal_len: usize,
}

impl HostPattern {
    pub fn parse(raw: &str) -> Result<HostPattern, &'static str> {
        let raw = raw.to_ascii_lowercase();
        // Validate as a host name with each `*` taken as a letter.
        if Hostname::parse_str(&raw.replace('*', "x")).is_none() {
            return Err("not a host name pattern (labels of a-z 0-9 - _ and `*`)");
        }
        let (any_subdomain, rest) = match raw.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, raw.as_str()),
        };
        let labels = rest
            .rsplit('.')
            .map(Piece::parse)
            .collect::<Result<Vec<_>, _>>()?;
        let literal_len = labels.iter().map(Piece::literal_len).sum();
        if literal_len == 0 {
            return Err("a pattern needs at least one literal label");
        }
        let exact = !any_subdomain && labels.iter().all(|l| matches!(l, Piece::Literal(_)));
        Ok(HostPattern {
            labels,
            any_subdomain,
            exact,
            literal_len,
        })
    }

    pub fn matches(&self, host: &Hostname) -> bool {
        let count = host.labels().count();
        let fits = if self.any_subdomain {
            count > self.labels.len()
        } else {
            count == self.labels.len()
        };
        fits && self
            .labels
            .iter()
            .zip(host.labels().rev())
            .all(|(pattern, label)| pattern.matches(label))
    }

    /// How specific the pattern is: more labels, then more literal text.
    pub fn specificity(&self) -> (usize, usize) {
        (
            self.labels.len() + usize::from(self.any_subdomain),
            self.literal_len,
        )
    }
}
