//! Tracepoint field offsets, read from tracefs `format` files at load time:
//! they move between kernel versions (for example `sched_process_fork` now
//! stores comms as `__data_loc`), so they are never hard-coded.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use monitor_common::{NO_FIELD, TpOffsets};

#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted and could not be mounted at {path} ({reason}): run `mount -t tracefs tracefs /sys/kernel/tracing`"
    )]
    NotMounted { path: PathBuf, reason: String },
    #[error(
        "this kernel lacks the tracepoint {category}:{name} ({path} is missing): agentmon needs a kernel that has it (check `ls {dir}`)",
        dir = path.parent().and_then(Path::parent).map(|p| p.display().to_string()).unwrap_or_default()
    )]
    MissingTracepoint {
        category: String,
        name: String,
        path: PathBuf,
    },
    #[error(
        "the tracepoint {tracepoint} has no field `{field}` on this kernel ({path}): this kernel version is not supported"
    )]
    MissingField {
        tracepoint: String,
        field: String,
        path: PathBuf,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Field name -> (offset, size) of one tracepoint.
pub type Fields = HashMap<String, (u32, u32)>;

/// Parses a tracefs `format` file (the `field:` lines).
pub fn parse_format(text: &str) -> Fields {
    let mut fields = Fields::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(decl) = line.strip_prefix("field:") else {
            continue;
        };
        let mut parts = decl.split(';').map(str::trim);
        let Some(decl) = parts.next() else { continue };
        let (mut offset, mut size) = (None, None);
        for part in parts {
            if let Some(v) = part.strip_prefix("offset:") {
                offset = v.parse().ok();
            } else if let Some(v) = part.strip_prefix("size:") {
                size = v.parse().ok();
            }
        }
        // The name is the last word of the declaration, before any `[N]`.
        let name = decl
            .rsplit(|c: char| c.is_whitespace() || c == '*')
            .next()
            .unwrap_or_default();
        let name = name.split('[').next().unwrap_or_default();
        if let (Some(offset), Some(size), false) = (offset, size, name.is_empty()) {
            fields.insert(name.to_owned(), (offset, size));
        }
    }
    fields
}

/// Where tracefs is mounted, mounting it at the usual place when it is not.
pub fn find_or_mount(mounts: &str) -> Result<PathBuf, TracefsError> {
    if let Some(dir) = super::mount_points(mounts, "tracefs").find(|d| d.join("events").is_dir()) {
        return Ok(dir);
    }
    let path = PathBuf::from("/sys/kernel/tracing");
    let status = std::process::Command::new("mount")
        .args(["-t", "tracefs", "tracefs"])
        .arg(&path)
        .stderr(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() && path.join("events").is_dir() => Ok(path),
        Ok(s) => Err(TracefsError::NotMounted {
            path,
            reason: format!("mount exited with {s}"),
        }),
        Err(e) => Err(TracefsError::NotMounted {
            path,
            reason: e.to_string(),
        }),
    }
}

/// Reads the fields of tracepoint `category:name` under `tracefs`.
pub fn read_fields(tracefs: &Path, category: &str, name: &str) -> Result<Fields, TracefsError> {
    let path = tracefs
        .join("events")
        .join(category)
        .join(name)
        .join("format");
    match fs::read_to_string(&path) {
        Ok(text) => Ok(parse_format(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(TracefsError::MissingTracepoint {
                category: category.to_owned(),
                name: name.to_owned(),
                path,
            })
        }
        Err(source) => Err(TracefsError::Read { path, source }),
    }
}

/// Builds the offsets global for the kernel programs.
pub fn offsets(tracefs: &Path) -> Result<TpOffsets, TracefsError> {
    let tp = |category: &str, name: &str| -> Result<(String, PathBuf, Fields), TracefsError> {
        let fields = read_fields(tracefs, category, name)?;
        let path = tracefs
            .join("events")
            .join(category)
            .join(name)
            .join("format");
        Ok((format!("{category}:{name}"), path, fields))
    };
    let field = |tp: &(String, PathBuf, Fields), field: &str| -> Result<u32, TracefsError> {
        tp.2.get(field)
            .map(|&(offset, _)| offset)
            .ok_or_else(|| TracefsError::MissingField {
                tracepoint: tp.0.clone(),
                field: field.to_owned(),
                path: tp.1.clone(),
            })
    };
    let newtask = tp("task", "task_newtask")?;
    let exec = tp("sched", "sched_process_exec")?;
    let exit = tp("sched", "sched_process_exit")?;
    Ok(TpOffsets {
        newtask_pid: field(&newtask, "pid")?,
        newtask_clone_flags: field(&newtask, "clone_flags")?,
        exec_filename: field(&exec, "filename")?,
        exit_pid: field(&exit, "pid")?,
        // `group_dead` is recent; without it the leader's exit stands in.
        exit_group_dead: field(&exit, "group_dead").unwrap_or(NO_FIELD),
        // From BTF, if at all: see btf.rs.
        task_mm: NO_FIELD,
        mm_arg_start: NO_FIELD,
        mm_arg_end: NO_FIELD,
        mm_exe_file: NO_FIELD,
        file_inode: NO_FIELD,
        inode_ino: NO_FIELD,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORK: &str = "name: sched_process_fork
ID: 313
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;
\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;
\tfield:const void * skaddr;\toffset:24;\tsize:8;\tsigned:0;
\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;

print fmt: \"comm=%s pid=%d\"
";

    #[test]
    fn parses_offsets_of_plain_data_loc_pointer_and_array_fields() {
        let f = parse_format(FORK);
        assert_eq!(f["parent_pid"], (12, 4));
        assert_eq!(f["child_pid"], (20, 4));
        assert_eq!(f["child_comm"], (16, 4));
        assert_eq!(f["skaddr"], (24, 8));
        assert_eq!(f["saddr_v6"], (40, 16));
        assert_eq!(f["common_pid"], (4, 4));
        assert!(!f.contains_key("fmt"));
    }

    #[test]
    fn missing_tracepoint_names_it_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("events")).unwrap();
        let err = offsets(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("task:task_newtask"), "{msg}");
        assert!(msg.contains("is missing"), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn missing_field_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        for tp in [
            "task/task_newtask",
            "sched/sched_process_exec",
            "sched/sched_process_exit",
        ] {
            let tp = dir.path().join("events").join(tp);
            fs::create_dir_all(&tp).unwrap();
            fs::write(
                tp.join("format"),
                "format:\n\tfield:pid_t pid;\toffset:8;\tsize:4;\tsigned:1;\n",
            )
            .unwrap();
        }
        let msg = offsets(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("task:task_newtask has no field `clone_flags`"),
            "{msg}"
        );
    }
}
