//! Counting on across a restart (see `crate::saved`): the baselines the
//! run before saved, taken up as this run meets each connection and flow,
//! and what this run saves for the next.

use monitor_common::UdpKey;

use super::{Dest, Direction, Traffic};
use crate::{
    agents::ToolId,
    dest::purpose::Purpose,
    saved::{SavedConn, SavedDest, SavedFlow, SavedProc},
    tree::Proc,
};

fn saved_dest(d: &Dest) -> SavedDest {
    SavedDest {
        name: d.name.clone(),
        country: d.country.clone(),
        asn: d.asn.clone(),
        purpose: d.purpose.to_owned(),
    }
}

/// A saved destination back as labels; an unknown purpose (from another
/// version) reads as `other`.
pub(super) fn dest_of(d: SavedDest) -> Dest {
    Dest {
        name: d.name,
        country: d.country,
        asn: d.asn,
        purpose: Purpose::from_label(&d.purpose)
            .unwrap_or(Purpose::Other)
            .label(),
    }
}

impl SavedFlow {
    fn key(&self) -> UdpKey {
        UdpKey {
            tgid: self.tgid,
            rport: self.rport,
            family: self.family,
            raddr: self.raddr,
        }
    }
}

impl Traffic {
    /// Takes up what the run before a restart had counted.
    pub fn resume(&mut self, conns: Vec<SavedConn>, flows: Vec<SavedFlow>) {
        self.resumed_conns = conns.into_iter().map(|c| (c.sock, c)).collect();
        self.resumed_flows = flows.into_iter().map(|f| (f.key(), f)).collect();
    }

    /// Forgets the baselines no connection or flow took up: their close
    /// events were lost while agentmon was down (`agentmon_events_lost_total`).
    pub fn end_resume(&mut self) -> usize {
        let left = self.resumed_conns.len() + self.resumed_flows.len();
        self.resumed_conns.clear();
        self.resumed_flows.clear();
        left
    }

    /// The process of a connection the run before a restart had met, for
    /// its close when its process is gone too. `id_of` maps tool names.
    pub fn resumed_proc(
        &self,
        sock: u64,
        start_ns: u64,
        id_of: impl Fn(&str) -> Option<ToolId>,
    ) -> Option<Proc> {
        let saved = self.resumed_conns.get(&sock)?;
        if saved.start_ns != start_ns {
            return None;
        }
        let p = &saved.proc;
        Some(Proc {
            tool: id_of(&p.tool)?,
            root: p.root,
            ppid: p.ppid,
            exe: p.exe.clone(),
            argv0: p.argv0.clone(),
            uid: p.uid,
        })
    }

    /// What is counted of every open connection and flow, for `saved.rs`.
    /// `name_of` names tool ids.
    pub fn save(&self, name_of: impl Fn(ToolId) -> String) -> (Vec<SavedConn>, Vec<SavedFlow>) {
        let conns = self
            .conns
            .iter()
            .map(|(sock, c)| SavedConn {
                sock: *sock,
                start_ns: c.start_ns,
                inbound: c.direction == Direction::Ingress,
                counted: c.counted,
                tls_counted: c.tls_counted,
                dest: c.dest.as_ref().map(saved_dest),
                host: c.names.host.clone(),
                proc: SavedProc {
                    tool: name_of(c.proc.tool),
                    root: c.proc.root,
                    ppid: c.proc.ppid,
                    exe: c.proc.exe.clone(),
                    argv0: c.proc.argv0.clone(),
                    uid: c.proc.uid,
                },
            })
            // Baselines not taken up yet stay for the next run.
            .chain(self.resumed_conns.values().cloned())
            .collect();
        let flows = self
            .flows
            .iter()
            .map(|(key, f)| SavedFlow {
                tgid: key.tgid,
                family: key.family,
                raddr: key.raddr,
                rport: key.rport,
                counted: (f.last.tx_bytes, f.last.rx_bytes),
                dest: saved_dest(&f.dest),
            })
            .chain(self.resumed_flows.values().cloned())
            .collect();
        (conns, flows)
    }
}
