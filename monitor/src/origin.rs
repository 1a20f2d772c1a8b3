//! Where an entry of a catalog came from: the embedded built-in text, or the
//! config file. Catalog specs keep the places of their values
//! (`toml::Spanned`), so an error about a config value carries its place
//! and `config` turns it into `path:line:column` without parsing again.

use toml::Spanned;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The catalog embedded in the binary.
    Builtin,
    /// The config file: the byte offset, in its text, of the entry or of the
    /// value a problem is about.
    Config(usize),
}

impl Origin {
    /// A config entry, placed at `value` (its first field).
    pub fn config<T>(value: &Spanned<T>) -> Origin {
        Origin::Config(value.span().start)
    }

    /// The same origin, pointing at `value`: the place of one field of a
    /// config entry; built-in entries stay built-in.
    pub fn at<T>(self, value: &Spanned<T>) -> Origin {
        match self {
            Origin::Builtin => Origin::Builtin,
            Origin::Config(_) => Origin::config(value),
        }
    }

    /// The byte offset in the config text, for a config entry.
    pub fn offset(self) -> Option<usize> {
        match self {
            Origin::Builtin => None,
            Origin::Config(offset) => Some(offset),
        }
    }
}

/// A value with no place in a file, for specs written in code (tests).
pub fn unplaced<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values_keep_their_place_builtin_ones_have_none() {
        let value = Spanned::new(7..9, "x");
        assert_eq!(Origin::Config(1).at(&value), Origin::Config(7));
        assert_eq!(Origin::Builtin.at(&value), Origin::Builtin);
        assert_eq!(Origin::config(&value).offset(), Some(7));
        assert_eq!(Origin::Builtin.offset(), None);
    }
}
