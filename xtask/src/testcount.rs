//! Runs `cargo test`, passing its output through, and closes with one line
//! that totals every test binary: "tests: N passed, N failed, N skipped".
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result};

use crate::cmd;

#[derive(Debug, Default, PartialEq)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
    binaries: u64,
}

impl Totals {
    /// Adds libtest's "test result: ok. 17 passed; 0 failed; 1 ignored; ..." line.
    fn add(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        for pair in words.windows(2) {
            let Ok(n) = pair[0].parse::<u64>() else {
                continue;
            };
            match pair[1].trim_end_matches([';', ',']) {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
        self.binaries += 1;
    }
}

pub fn run(cmd: &mut Command, fix: &str) -> Result<()> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start cargo test")?;
    let mut totals = Totals::default();
    let mut reader = BufReader::new(child.stdout.take().context("no stdout pipe")?);
    let mut buf = Vec::new();
    while reader
        .read_until(b'\n', &mut buf)
        .context("reading cargo test output")?
        > 0
    {
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        println!("{line}");
        totals.add(line);
        buf.clear();
    }
    let status = child.wait().context("waiting for cargo test")?;
    if totals.binaries > 0 {
        println!(
            "tests: {} passed, {} failed, {} skipped",
            totals.passed, totals.failed, totals.ignored
        );
    }
    cmd::check(cmd, status, fix)
}

#[cfg(test)]
mod tests {
    use super::Totals;

    #[test]
    fn totals_libtest_lines() {
        let mut t = Totals::default();
        t.add("test result: ok. 17 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.88s");
        t.add("test result: FAILED. 45 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.21s");
        t.add("test kernel::x ... ok");
        assert_eq!(
            t,
            Totals {
                passed: 62,
                failed: 2,
                ignored: 1,
                binaries: 2
            }
        );
    }
}
