//! The receive tracepoint of monitor-ebpf's `aead.rs`: tp_btf on
//! `tcp_rcv_space_adjust`, which runs in the receiving thread for every TCP
//! receive on the machine that copies data, and tells a record rustls on
//! aws-lc opened the socket it came from. Loaded at start (the `rx_tie`
//! feature), attached only while some process's aws-lc is probed: while no
//! such agent runs, no receive on the machine reaches it.

use aya::{
    Ebpf,
    programs::{BtfTracePoint, tp_btf::BtfTracePointLinkId},
};
use tracing::debug;

use super::{LoadError, program, refused};

pub const PROGRAM: &str = "tcp_rcv_space_adjust";

/// Whether the tracepoint is attached, and for how many probed opens.
#[derive(Debug, Default)]
pub struct RxTie {
    users: usize,
    link: Option<BtfTracePointLinkId>,
}

/// Loads the program against the kernel's BTF, without attaching it.
pub fn load(ebpf: &mut Ebpf) -> Result<(), LoadError> {
    let btf = aya::Btf::from_sys_fs().map_err(|e| LoadError::Program {
        program: PROGRAM.to_owned(),
        reason: format!("no kernel BTF: {e}"),
    })?;
    let tp: &mut BtfTracePoint = program(ebpf, PROGRAM)?;
    tp.load(PROGRAM, &btf).map_err(|e| refused(PROGRAM, &e))
}

impl RxTie {
    /// One more probed open needs it: attached for the first.
    pub fn hold(&mut self, ebpf: &mut Ebpf) -> Result<(), LoadError> {
        if self.link.is_none() {
            let tp: &mut BtfTracePoint = program(ebpf, PROGRAM)?;
            self.link = Some(tp.attach().map_err(|e| refused(PROGRAM, &e))?);
            debug!("receive tracepoint attached: rustls on aws-lc is probed");
        }
        self.users += 1;
        Ok(())
    }

    /// One fewer: detached with the last.
    pub fn release(&mut self, ebpf: &mut Ebpf) {
        self.users = self.users.saturating_sub(1);
        if self.users > 0 {
            return;
        }
        if let Some(link) = self.link.take()
            && let Ok(tp) = program::<BtfTracePoint>(ebpf, PROGRAM)
        {
            let _ = tp.detach(link);
            debug!("receive tracepoint detached: no rustls on aws-lc is probed");
        }
    }
}
