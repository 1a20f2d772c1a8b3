//! Process lifecycle: keep `TRACKED` equal to the live agent process trees.

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes, generated,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use monitor_common::{
    EXEC_ARGS_LEN, EventHeader, ExecEvent, ExitEvent, ForkEvent, NO_FIELD, TOOL_PENDING, Tracked,
    counter, kind,
};

use crate::{
    maps::{EVENTS, PROMPT, TRACKED, bump, current_task, current_tgid, emit, off, tracked},
    payload::bounded,
    tls_calls,
};

const CLONE_THREAD: u64 = 0x0001_0000;

/// Hook: tracepoint `task:task_newtask`, fired in copy_process() by the parent
/// before the child can run, with the child's pid and the clone flags. That
/// lets a new process of a tracked tree be tracked before its first
/// instruction, and tells threads (CLONE_THREAD, same tgid) apart without
/// reading `task_struct`, whose layout is build-specific.
#[tracepoint(category = "task", name = "task_newtask")]
pub fn task_newtask(ctx: TracePointContext) -> u32 {
    match try_task_newtask(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_task_newtask(ctx: &TracePointContext) -> Result<(), i64> {
    let parent = current_tgid();
    let Some(entry) = tracked(parent) else {
        return Ok(());
    };
    // SAFETY: offsets come from this kernel's tracefs format file.
    let flags: u64 = unsafe { ctx.read_at(off!(newtask_clone_flags))? };
    if flags & CLONE_THREAD != 0 {
        return Ok(());
    }
    let child: i32 = unsafe { ctx.read_at(off!(newtask_pid))? };
    let child = child as u32;
    if TRACKED.insert(child, entry, 0).is_err() {
        bump(counter::TRACKED_FULL);
        return Ok(());
    }
    emit(ForkEvent {
        header: EventHeader {
            kind: kind::FORK,
            tgid: parent,
            ktime_ns: unsafe { bpf_ktime_get_ns() },
        },
        child_tgid: child,
        tool: entry.tool,
    });
    Ok(())
}

/// Hook: tracepoint `sched:sched_process_exec`, fired after a successful
/// execve in the new program's context. Every exec goes to user space, which
/// matches agents on /proc/<pid>/{exe,cmdline,environ}. An untracked process
/// is tracked as pending until then, so a connection it makes in its first
/// microseconds is not missed; user space resolves or drops it.
#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    match try_sched_process_exec(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_sched_process_exec(ctx: &TracePointContext) -> Result<(), i64> {
    let tgid = current_tgid();
    let before = tracked(tgid);
    let untracked = before.is_none();
    // A pending process that execs waits for its own judgment: rooted at
    // itself, user space's verdict on its pending parent (read from an
    // earlier event) does not undo it. A labelled one keeps its label.
    if before.is_none_or(|t| t.tool == TOOL_PENDING && t.root_tgid != tgid) {
        let pending = Tracked {
            tool: TOOL_PENDING,
            root_tgid: tgid,
        };
        if TRACKED.insert(tgid, pending, 0).is_err() {
            bump(counter::TRACKED_FULL);
        }
    }
    let Some(mut entry) = EVENTS.reserve::<ExecEvent>(0) else {
        bump(counter::EVENTS_LOST);
        return Ok(());
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points into the reserved ring-buffer record; every field
    // is written before submit.
    unsafe {
        (*event).header = EventHeader {
            kind: kind::EXEC,
            tgid,
            ktime_ns: bpf_ktime_get_ns(),
        };
        (*event).untracked = untracked as u32;
        (*event).filename_len = 0;
        (*event).filename[0] = 0;
        // `filename` is a __data_loc: low 16 bits offset, high 16 bits length.
        if let Ok(loc) = ctx.read_at::<u32>(off!(exec_filename)) {
            let src = (ctx.as_ptr() as *const u8).add((loc & 0xffff) as usize);
            if let Ok(name) = bpf_probe_read_kernel_str_bytes(src, &mut (*event).filename) {
                (*event).filename_len = name.len() as u32;
            }
        }
        (*event)._pad = 0;
        (*event).args_len = read_args(&mut (*event).args);
        (*event).exe_ino = read_exe_ino();
    }
    entry.submit(PROMPT);
    Ok(())
}

/// Copies the start of the new program's command line (the strings execve
/// just put on its stack, `mm->arg_start..arg_end`) into `dst`; returns the
/// bytes copied, 0 without the struct offsets (no kernel BTF) or on a
/// fault. User space reads /proc too; this is for a process gone by then.
#[inline(always)]
fn read_args(dst: &mut [u8; EXEC_ARGS_LEN]) -> u32 {
    let task_mm = off!(task_mm);
    if task_mm == NO_FIELD as usize {
        return 0;
    }
    let task = current_task() as *const u8;
    // SAFETY: kernel reads through the helper, which fails soft on a bad
    // address; the offsets come from this kernel's BTF.
    unsafe {
        let Ok(mm) = bpf_probe_read_kernel(task.add(task_mm) as *const u64) else {
            return 0;
        };
        let mm = mm as *const u8;
        if mm.is_null() {
            return 0;
        }
        let (Ok(start), Ok(end)) = (
            bpf_probe_read_kernel(mm.add(off!(mm_arg_start)) as *const u64),
            bpf_probe_read_kernel(mm.add(off!(mm_arg_end)) as *const u64),
        ) else {
            return 0;
        };
        let len = bounded(end.saturating_sub(start), EXEC_ARGS_LEN);
        if len == 0 {
            return 0;
        }
        let copied =
            generated::bpf_probe_read_user(dst.as_mut_ptr().cast(), len, start as *const _);
        if copied == 0 { len } else { 0 }
    }
}

/// The inode number of the program the current task runs
/// (`mm->exe_file->f_inode->i_ino`), 0 without the struct offsets or on a
/// fault. User space compares it with `/proc/<pid>/exe`'s: another file
/// there means the process has exec'd again since this exec.
#[inline(always)]
fn read_exe_ino() -> u64 {
    if off!(mm_exe_file) == NO_FIELD as usize {
        return 0;
    }
    let task = current_task() as *const u8;
    // SAFETY: kernel reads through the helper, which fails soft on a bad
    // address (a null pointer included); the offsets come from BTF.
    unsafe {
        let read = |at: *const u8, off: usize| bpf_probe_read_kernel(at.add(off) as *const u64);
        let Ok(mm) = read(task, off!(task_mm)) else {
            return 0;
        };
        let Ok(file) = read(mm as *const u8, off!(mm_exe_file)) else {
            return 0;
        };
        let Ok(inode) = read(file as *const u8, off!(file_inode)) else {
            return 0;
        };
        read(inode as *const u8, off!(inode_ino)).unwrap_or(0)
    }
}

/// Hook: tracepoint `sched:sched_process_exit`, fired for every exiting
/// thread. A tracked process's thread takes its TLS state with it; only
/// the last thread (`group_dead`, or the leader on kernels without that
/// field) removes the process from `TRACKED`.
#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    match try_sched_process_exit(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_sched_process_exit(ctx: &TracePointContext) -> Result<(), i64> {
    let tgid = current_tgid();
    if tracked(tgid).is_none() {
        return Ok(());
    }
    tls_calls::thread_exit(current_task());
    let group_dead_off = off!(exit_group_dead);
    let group_dead = if group_dead_off == NO_FIELD as usize {
        let pid: i32 = unsafe { ctx.read_at(off!(exit_pid))? };
        pid as u32 == tgid
    } else {
        unsafe { ctx.read_at::<u8>(group_dead_off)? != 0 }
    };
    if !group_dead {
        return Ok(());
    }
    let _ = TRACKED.remove(tgid);
    emit(ExitEvent {
        header: EventHeader {
            kind: kind::EXIT,
            tgid,
            ktime_ns: unsafe { bpf_ktime_get_ns() },
        },
    });
    Ok(())
}
