//! One compiled matching rule.

use globset::{GlobBuilder, GlobMatcher};
use toml::Spanned;

use super::{CatalogError, Origin, RuleSpec, Strength, elf_note};
use crate::procfs::ProcInfo;

/// The kernel keeps at most 15 bytes of comm (TASK_COMM_LEN 16 with the NUL),
/// so a longer comm condition could never match.
const COMM_MAX: usize = 15;

#[derive(Debug, Clone)]
pub(super) struct Rule {
    exe: Option<GlobMatcher>,
    argv: Option<String>,
    arg: Option<GlobMatcher>,
    argv0: Option<GlobMatcher>,
    comm: Option<String>,
    env: Option<(String, Option<String>)>,
    elf_note: Option<String>,
    pub(super) strength: Strength,
}

/// Where a rule came from, for error messages.
pub(super) struct RuleAt<'a> {
    /// The rule's place (a field's error points at the field).
    pub origin: Origin,
    pub tool: &'a str,
    pub rule: usize,
}

impl RuleAt<'_> {
    fn bad(
        &self,
        field: &'static str,
        value: &Spanned<String>,
        reason: &'static str,
    ) -> CatalogError {
        CatalogError::BadCondition {
            origin: self.origin.at(value),
            tool: self.tool.to_owned(),
            rule: self.rule,
            field,
            value: value.get_ref().clone(),
            reason,
        }
    }

    fn glob(
        &self,
        field: &'static str,
        pattern: &Spanned<String>,
    ) -> Result<GlobMatcher, CatalogError> {
        // `*` stops at '/', `**` crosses it: "**/bin/q" matches a file named
        // exactly q in a bin directory, never ".../bin/qemu".
        GlobBuilder::new(pattern.get_ref())
            .literal_separator(true)
            .build()
            .map(|g| g.compile_matcher())
            .map_err(|source| CatalogError::BadGlob {
                origin: self.origin.at(pattern),
                tool: self.tool.to_owned(),
                rule: self.rule,
                field,
                source,
            })
    }
}

impl Rule {
    pub(super) fn compile(spec: &RuleSpec, at: &RuleAt<'_>) -> Result<Rule, CatalogError> {
        let RuleSpec {
            exe,
            argv,
            arg,
            argv0,
            comm,
            env,
            elf_note,
        } = spec;
        if let Some(note) = elf_note {
            if note.get_ref().is_empty() || note.get_ref().contains('\0') {
                return Err(at.bad("elf_note", note, "expected a note's name"));
            }
            if exe.is_none() {
                return Err(at.bad(
                    "elf_note",
                    note,
                    "add an exe glob beside it: agentmon reads the file only of processes whose exe matches",
                ));
            }
        }
        if exe.is_none()
            && argv.is_none()
            && arg.is_none()
            && argv0.is_none()
            && comm.is_none()
            && env.is_none()
        {
            return Err(CatalogError::EmptyRule {
                origin: at.origin,
                tool: at.tool.to_owned(),
                rule: at.rule,
            });
        }
        if let Some(argv) = argv
            && argv.get_ref().is_empty()
        {
            return Err(at.bad("argv", argv, "an empty substring matches every process"));
        }
        if let Some(comm) = comm
            && (comm.get_ref().is_empty() || comm.get_ref().len() > COMM_MAX)
        {
            return Err(at.bad("comm", comm, "comm is 1 to 15 bytes long"));
        }
        let env = match env {
            None => None,
            Some(text) => {
                let (name, value) = match text.get_ref().split_once('=') {
                    Some((name, value)) => (name, Some(value.to_owned())),
                    None => (text.get_ref().as_str(), None),
                };
                if name.is_empty() || name.contains('\0') {
                    return Err(at.bad("env", text, "expected NAME or NAME=VALUE"));
                }
                Some((name.to_owned(), value))
            }
        };
        Ok(Rule {
            exe: exe.as_ref().map(|p| at.glob("exe", p)).transpose()?,
            argv: argv.as_ref().map(|a| a.get_ref().clone()),
            arg: arg.as_ref().map(|p| at.glob("arg", p)).transpose()?,
            argv0: argv0.as_ref().map(|p| at.glob("argv0", p)).transpose()?,
            comm: comm.as_ref().map(|c| c.get_ref().clone()),
            env,
            elf_note: elf_note.as_ref().map(|n| n.get_ref().clone()),
            strength: if exe.is_some() || argv.is_some() || arg.is_some() || argv0.is_some() {
                Strength::Strong
            } else {
                Strength::Weak
            },
        })
    }

    pub(super) fn env_name(&self) -> Option<&str> {
        self.env.as_ref().map(|(name, _)| name.as_str())
    }

    /// True when every condition the rule has holds for `p`.
    pub(super) fn matches(&self, p: &ProcInfo) -> bool {
        if let Some(glob) = &self.exe
            && !p.exe.as_deref().is_some_and(|exe| glob.is_match(exe))
        {
            return false;
        }
        if let Some(needle) = &self.argv
            && !p.argv.iter().any(|a| a.contains(needle.as_str()))
        {
            return false;
        }
        if let Some(glob) = &self.arg
            && !p.argv.iter().skip(1).any(|a| glob.is_match(a))
        {
            return false;
        }
        if let Some(glob) = &self.argv0
            && !p.argv.first().is_some_and(|a| glob.is_match(a))
        {
            return false;
        }
        if let Some(comm) = &self.comm
            && p.comm != *comm
        {
            return false;
        }
        if let Some((name, want)) = &self.env
            && !p
                .env
                .iter()
                .any(|(n, v)| n == name && want.as_ref().is_none_or(|want| v == want))
        {
            return false;
        }
        // Last: the only condition that reads a file.
        if let Some(name) = &self.elf_note
            && !p
                .exe_file
                .as_deref()
                .is_some_and(|file| elf_note::has_note(file, name))
        {
            return false;
        }
        true
    }
}
