//! Reading the log back: the file the config names and the older files
//! that rotation left beside it (agentmon's own `.1`, `.2` ...; logrotate's
//! `.2.gz`, or with `dateext` `-20261201` and `-20261201.gz`), oldest
//! first, plain or gzip-compressed.

use std::{
    fs::{self, File},
    io::{self, BufRead, BufReader},
    path::{Path, PathBuf},
};

use flate2::bufread::MultiGzDecoder;

/// Where a file stands among the rotated ones; sorts oldest first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Age {
    /// logrotate's `dateext`: the suffix is a date, so later sorts later.
    Dated(String),
    /// `.N`: the higher `N`, the older, hence reversed.
    Numbered(std::cmp::Reverse<u32>),
    /// The file being written.
    Current,
}

/// Suffixes of compressors other than gzip, which logrotate can be told to
/// use; their files are named so that the caller can say why they were
/// left out.
const OTHER_COMPRESSION: &[&str] = &[".xz", ".bz2", ".zst", ".lz4", ".lzma", ".Z"];

/// The files that make up the log at `path`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Family {
    /// Oldest first; the named file (if it exists) last.
    pub files: Vec<PathBuf>,
    /// Rotated files compressed with something other than gzip.
    pub unreadable: Vec<PathBuf>,
}

/// The log at `path` and its rotated siblings in the same folder. An error
/// when the folder cannot be listed, or when neither the file nor any
/// sibling exists.
pub fn family(path: &Path) -> io::Result<Family> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let base = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut found: Vec<(Age, PathBuf)> = Vec::new();
    let mut unreadable = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(age) = age(base, name) {
            found.push((age, entry.path()));
        } else if OTHER_COMPRESSION.iter().any(|ext| {
            name.strip_suffix(ext)
                .is_some_and(|n| age(base, n).is_some())
        }) {
            unreadable.push(entry.path());
        }
    }
    if found.is_empty() {
        // The named file's own error: "No such file or directory" and the like.
        File::open(path)?;
    }
    found.sort();
    unreadable.sort();
    Ok(Family {
        files: found.into_iter().map(|(_, p)| p).collect(),
        unreadable,
    })
}

/// The age of file `name` if it is the log `base` or one of its rotations.
fn age(base: &str, name: &str) -> Option<Age> {
    let rest = name.strip_prefix(base)?;
    if rest.is_empty() {
        return Some(Age::Current);
    }
    let rest = rest.strip_suffix(".gz").unwrap_or(rest);
    if let Some(n) = rest.strip_prefix('.') {
        let all_digits = !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
        return all_digits
            .then(|| n.parse().ok())
            .flatten()
            .map(|n| Age::Numbered(std::cmp::Reverse(n)));
    }
    // dateformat may put separators between the fields (-%Y-%m-%d).
    let date = rest.strip_prefix('-')?;
    let dated = date.starts_with(|c: char| c.is_ascii_digit())
        && date
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'-' || b == b'_');
    dated.then(|| Age::Dated(date.to_owned()))
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Opens `path` for reading lines, decompressing it when it starts with
/// gzip's magic bytes: logrotate's `compressext` need not be `.gz`, and a
/// `.gz` name may hold a plain file that was never compressed.
pub fn open(path: &Path) -> io::Result<Box<dyn BufRead>> {
    let mut file = BufReader::new(File::open(path)?);
    // A regular file's first read fills the buffer: two bytes unless the
    // file is shorter.
    if file.fill_buf()?.starts_with(&GZIP_MAGIC) {
        Ok(Box::new(BufReader::new(MultiGzDecoder::new(file))))
    } else {
        Ok(Box::new(file))
    }
}

/// Calls `each(file, line number, line)` for every line of `files` in
/// order, without its line end. A file that cannot be opened, or whose
/// reading fails part way (a truncated or corrupt gzip file), gets one
/// `warn` line; the lines read before the failure count.
pub fn each_line(
    files: &[PathBuf],
    warn: &mut dyn FnMut(String),
    each: &mut dyn FnMut(&Path, usize, &[u8]),
) {
    for path in files {
        let reader = match open(path) {
            Ok(reader) => reader,
            Err(e) => {
                warn(format!("cannot read {}: {e}; skipped", path.display()));
                continue;
            }
        };
        let mut number = 0;
        for line in reader.split(b'\n') {
            match line {
                Ok(line) => {
                    number += 1;
                    each(path, number, line.strip_suffix(b"\r").unwrap_or(&line));
                }
                Err(e) => {
                    warn(format!(
                        "{}: cannot read past line {number} ({e}); the lines before it are counted",
                        path.display()
                    ));
                    break;
                }
            }
        }
    }
}
