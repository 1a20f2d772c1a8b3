//! Optional kernel features: what agentmon does without each. Every one is
//! probed by loading the program that needs it; a refusal costs one log
//! line and shows in `agentmon_kernel_feature_available`.

use std::fmt;

/// A kernel feature agentmon can do without.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Feature {
    /// sock_ops state callbacks (Linux 4.17): the exact moment a TCP
    /// connection closes.
    SockOps,
    /// `bpf_get_current_task` in packet programs (5.8, CAP_PERFMON): ties
    /// TLS library calls to their sockets.
    TlsTie,
    /// Uprobes on TLS libraries (4.17 with BPF links 5.x): plaintext sizes
    /// and request heads.
    Uprobes,
    /// Kernel BTF (CONFIG_DEBUG_INFO_BTF): exec events carry the command
    /// line, so an agent gone before /proc is read is still recognised.
    ExecArgs,
    /// A tp_btf tracepoint on TCP receives (5.5, kernel BTF), attached
    /// while some process's aws-lc is probed: ties the records rustls on
    /// aws-lc receives to their socket.
    RxTie,
}

pub const ALL: [Feature; 5] = [
    Feature::SockOps,
    Feature::TlsTie,
    Feature::Uprobes,
    Feature::ExecArgs,
    Feature::RxTie,
];

impl Feature {
    /// The `feature` label.
    pub fn label(self) -> &'static str {
        match self {
            Feature::SockOps => "sock_ops",
            Feature::TlsTie => "tls_tie",
            Feature::Uprobes => "uprobes",
            Feature::ExecArgs => "exec_args",
            Feature::RxTie => "rx_tie",
        }
    }

    /// The one log line that says what is lost without it.
    pub fn without(self) -> &'static str {
        match self {
            Feature::SockOps => {
                "sock_ops unavailable: TCP connections end at their last FIN or RST packet, and one that dies without either ends when its process exits"
            }
            Feature::TlsTie => {
                "packet programs cannot read the current task: TLS plaintext is counted in agentmon_tls_untied_bytes_total, not per connection"
            }
            Feature::Uprobes => {
                "TLS probes unavailable: TLS 1.3 sizes come from records, TLS 1.2 ones for AEAD suites"
            }
            Feature::ExecArgs => {
                "command lines unavailable at exec: an agent run by an interpreter (python3 .../aider) that exits before agentmon reads /proc is not recognised"
            }
            Feature::RxTie => {
                "the TCP receive tracepoint is unavailable: rustls on aws-lc is not probed, its TLS 1.3 sizes come from records"
            }
        }
    }

    /// What the kernel needs for it.
    pub fn needs(self) -> &'static str {
        match self {
            Feature::SockOps => "sock_ops state callbacks (Linux 4.17)",
            Feature::TlsTie => {
                "bpf_get_current_task in packet programs (Linux 5.8, with CAP_PERFMON)"
            }
            Feature::Uprobes => "uprobes with BPF (Linux 4.17)",
            Feature::ExecArgs => "kernel BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF)",
            Feature::RxTie => "tp_btf tracepoints with kernel BTF (Linux 5.5), and uprobes",
        }
    }

    /// Whether the feature should be tried (not disabled on the command line).
    pub fn wanted(self, disabled: &[Feature]) -> bool {
        !disabled.contains(&self)
    }
}

/// What this kernel gave agentmon.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    pub sock_ops: bool,
    pub tls_tie: bool,
    pub uprobes: bool,
    pub exec_args: bool,
    pub rx_tie: bool,
}

impl Features {
    pub fn has(&self, feature: Feature) -> bool {
        match feature {
            Feature::SockOps => self.sock_ops,
            Feature::TlsTie => self.tls_tie,
            Feature::Uprobes => self.uprobes,
            Feature::ExecArgs => self.exec_args,
            Feature::RxTie => self.rx_tie,
        }
    }
}

impl fmt::Display for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for feature in ALL {
            let sign = if self.has(feature) { "+" } else { "-" };
            write!(
                f,
                "{}{sign}{}",
                if first { "" } else { " " },
                feature.label()
            )?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_feature_with_its_state() {
        let f = Features {
            sock_ops: true,
            tls_tie: false,
            uprobes: true,
            exec_args: true,
            rx_tie: false,
        };
        assert_eq!(
            f.to_string(),
            "+sock_ops -tls_tie +uprobes +exec_args -rx_tie"
        );
        for feature in ALL {
            assert!(!feature.without().contains('\n'));
        }
    }
}
