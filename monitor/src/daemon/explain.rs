//! One log line per program about how its TLS is seen when no probe
//! covers it: what a user of a static agent (Codex, a rustls or Go client)
//! would otherwise only see as a zero, or as `library="record"`.

use std::{collections::HashSet, path::Path};

use tracing::{info, warn};

use crate::tree::Proc;

/// Programs explained, at most this many of each kind (bounded memory).
const EXPLAINED_MAX: usize = 256;

#[derive(Default)]
pub struct TlsExplained {
    unseen: HashSet<String>,
    derived: HashSet<String>,
}

impl TlsExplained {
    /// A TLS connection of `exe` closed with no plaintext seen.
    pub fn unseen(&mut self, tool: &str, exe: &str, uprobes: bool) {
        if !first(&mut self.unseen, exe) {
            return;
        }
        let why = if uprobes {
            "no TLS library agentmon probes (OpenSSL, GnuTLS, BoringSSL in Bun executables, Go's crypto/tls, rustls on aws-lc) was found in it or in what it loaded, as for rustls on ring, and it was neither TLS 1.3 with data nor TLS 1.2 with an AEAD suite (GCM, CCM, ChaCha20), whose sizes agentmon derives from the records"
        } else {
            "agentmon runs without uprobes here (see agentmon_kernel_feature_available), and it was neither TLS 1.3 with data nor TLS 1.2 with an AEAD suite (GCM, CCM, ChaCha20), whose sizes agentmon derives from the records"
        };
        warn!(
            tool,
            exe,
            "a TLS connection of this program closed with no plaintext seen: {why}; its bytes and destinations are exact, its plaintext and requests are not seen (agentmon_tls_connections_unseen_total)"
        );
    }

    /// A TLS connection of `proc` had its plaintext sizes derived from its
    /// records.
    pub fn derived(&mut self, tool: &str, proc: &Proc, uprobes: bool) {
        if !first(&mut self.derived, &proc.exe) {
            return;
        }
        let why = if !uprobes {
            "agentmon runs without uprobes here (see agentmon_kernel_feature_available)"
        } else if links_rustls(Path::new(&proc.exe)) {
            "it links rustls, on a provider agentmon has no probe for (ring), or its aws-lc was not found"
        } else {
            "no TLS library agentmon probes was found in it, or its probes came after its first data"
        };
        info!(
            tool,
            exe = proc.exe,
            "this program's TLS plaintext sizes are derived from its TLS records (library=\"record\"): {why}; egress is exact, TLS 1.3 ingress includes the session tickets, and no request heads are seen"
        );
    }
}

fn first(explained: &mut HashSet<String>, exe: &str) -> bool {
    explained.len() < EXPLAINED_MAX && explained.insert(exe.to_owned())
}

/// Whether the executable holds rustls.
fn links_rustls(exe: &Path) -> bool {
    let Ok(file) = std::fs::File::open(exe) else {
        return false;
    };
    // SAFETY: a read-only map of an executable; nothing here writes it.
    let Ok(map) = (unsafe { memmap2::Mmap::map(&file) }) else {
        return false;
    };
    crate::uprobes::links_rustls(&map)
}
