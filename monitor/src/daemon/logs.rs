//! The daemon's log files: records into the connection log, reopening
//! on SIGHUP, and housekeeping's look at their paths and dropped records.

use tracing::{info, warn};

use super::{KernelPort, State};
use crate::{
    agents::Catalog,
    connlog::{ConnLog, Event as LogEvent},
    procfs::ProcSource,
    traffic::{ConnReport, FlowReport},
};

impl<K: KernelPort, P: ProcSource> State<K, P> {
    pub fn reopen_logs(&mut self) {
        self.policy.reopen();
        if let Some(log) = &mut self.log {
            match log.reopen() {
                Ok(()) => info!(path = %log.path().display(), "reopened the connection log"),
                Err(e) => warn!(path = %log.path().display(), error = %e,
                    "cannot reopen the connection log; still writing to the old file"),
            }
        }
    }

    /// New files for logs whose path was removed or replaced, and the
    /// count of records the logs dropped.
    pub(super) fn follow_logs(&mut self) {
        let dropped = &self.metrics.log_records_dropped;
        if let Some(log) = &mut self.log {
            log.file().follow_path();
            dropped
                .with_label_values(&["connections"])
                .inc_by(log.file().take_dropped());
        }
        if let Some(n) = self.policy.follow_log() {
            dropped.with_label_values(&["violations"]).inc_by(n);
        }
    }
}

/// One record in the connection log; a record that cannot be made is
/// one warning (the file itself counts what it cannot take).
pub(super) fn log_conn(log: &mut ConnLog, catalog: &Catalog, event: LogEvent, conn: &ConnReport) {
    if let Err(e) = log.write_conn(event, catalog.name(conn.conn.tool), conn) {
        warn!(path = %log.path().display(), error = %e, "cannot write the connection log");
    }
}

pub(super) fn log_flow(log: &mut ConnLog, catalog: &Catalog, event: LogEvent, flow: &FlowReport) {
    if let Err(e) = log.write_flow(event, catalog.name(flow.proc.tool), flow) {
        warn!(path = %log.path().display(), error = %e, "cannot write the connection log");
    }
}
