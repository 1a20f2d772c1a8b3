//! Kernel struct offsets from the running kernel's BTF
//! (`/sys/kernel/btf/vmlinux`): where the exec program finds the new
//! program's command line (`current->mm->arg_start..arg_end`) and its
//! inode number (`current->mm->exe_file->f_inode->i_ino`). The layout of
//! `task_struct` changes with every build and configuration; BTF is the
//! kernel's own account of it. Without BTF, exec events carry no command
//! line and a process gone before agentmon reads /proc is judged by its
//! executable path alone.

use std::path::Path;

use btf_rs::{Btf, BtfType, Type};

/// The kernel's BTF.
pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// `task_struct.mm`, `mm_struct.arg_start`, `mm_struct.arg_end`, and the
/// way to the program's inode number (`mm_struct.exe_file`,
/// `file.f_inode`, `inode.i_ino`), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgOffsets {
    pub task_mm: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub mm_exe_file: u32,
    pub file_inode: u32,
    pub inode_ino: u32,
}

/// Reads the offsets from the BTF at `path`, or says why not.
pub fn arg_offsets(path: &Path) -> Result<ArgOffsets, String> {
    let btf = Btf::from_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(ArgOffsets {
        task_mm: member_offset(&btf, "task_struct", "mm")?,
        mm_arg_start: member_offset(&btf, "mm_struct", "arg_start")?,
        mm_arg_end: member_offset(&btf, "mm_struct", "arg_end")?,
        mm_exe_file: member_offset(&btf, "mm_struct", "exe_file")?,
        file_inode: member_offset(&btf, "file", "f_inode")?,
        inode_ino: member_offset(&btf, "inode", "i_ino")?,
    })
}

/// Byte offset of `member` in struct `name`, looking into anonymous structs
/// and unions (`mm_struct` keeps its fields in one since 6.2).
fn member_offset(btf: &Btf, name: &str, member: &str) -> Result<u32, String> {
    let types = btf
        .resolve_types_by_name(name)
        .map_err(|e| format!("struct {name}: {e}"))?;
    types
        .iter()
        .find_map(|t| match t {
            Type::Struct(s) => find(btf, s, member, 0),
            _ => None,
        })
        .ok_or_else(|| format!("struct {name} has no member {member}"))
}

fn find(btf: &Btf, s: &btf_rs::Struct, member: &str, base_bits: u32) -> Option<u32> {
    for m in &s.members {
        let bits = base_bits + m.bit_offset();
        let name = btf.resolve_name(m).unwrap_or_default();
        if name == member {
            // A bitfield has no byte address to read a pointer from.
            return (bits.is_multiple_of(8) && m.bitfield_size().is_none_or(|b| b == 0))
                .then_some(bits / 8);
        }
        if name.is_empty() {
            let inner = btf.resolve_type_by_id(m.get_type_id()?).ok()?;
            if let Type::Struct(inner) | Type::Union(inner) = inner
                && let Some(found) = find(btf, &inner, member, bits)
            {
                return Some(found);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The running kernel's BTF, where it has one (the build machines do):
    /// the offsets are inside the structs and in their order.
    #[test]
    fn finds_the_command_line_fields_in_this_kernels_btf() {
        let path = Path::new(VMLINUX);
        if !path.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs on a kernel with BTF"
            );
            return;
        }
        let off = arg_offsets(path).unwrap();
        assert!(off.task_mm > 0 && off.task_mm.is_multiple_of(8), "{off:?}");
        assert_eq!(off.mm_arg_end, off.mm_arg_start + 8, "{off:?}");
        for pointer in [off.mm_exe_file, off.file_inode, off.inode_ino] {
            assert!(pointer.is_multiple_of(8), "{off:?}");
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = arg_offsets(Path::new("/nonexistent/vmlinux")).unwrap_err();
        assert!(err.contains("/nonexistent/vmlinux"), "{err}");
    }
}
