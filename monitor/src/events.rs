//! Decoding ring-buffer records into typed events.

use std::{mem::size_of, ptr::read_unaligned};

use crate::procfs::parse_cmdline;
use monitor_common::{
    AF_INET6, Conn, ConnEvent, EventHeader, ExecEvent, ForkEvent, IPPROTO_UDP, PayloadEvent,
    PolicyBlockEvent, UdpFlowEvent, UdpKey, kind, payload_kind,
};

/// What a payload event holds (`monitor_common::payload_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// The first bytes a tracked connection sent: a TLS ClientHello or an
    /// HTTP request head, for naming.
    FirstBytes,
    /// A DNS answer a tracked process received.
    Dns,
    /// A plaintext TLS write that starts like a request.
    TlsRequest,
}

impl PayloadKind {
    fn from_wire(kind: u32) -> Option<Self> {
        match kind {
            payload_kind::FIRST_TX => Some(Self::FirstBytes),
            payload_kind::DNS => Some(Self::Dns),
            payload_kind::TLS_REQUEST => Some(Self::TlsRequest),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Exec {
        tgid: u32,
        /// The kernel tracked nothing under this pid before the exec: a
        /// table entry under it is a recycled pid's.
        untracked: bool,
        filename: String,
        /// The command line as the kernel read it at the exec (possibly
        /// cut short); empty without kernel BTF.
        argv: Vec<String>,
        /// The inode number of the program loaded; `None` without kernel
        /// BTF.
        exe_ino: Option<u64>,
    },
    Fork {
        parent: u32,
        child: u32,
    },
    Exit {
        tgid: u32,
    },
    ConnOpen {
        sock: u64,
        conn: Conn,
    },
    ConnClose {
        sock: u64,
        conn: Conn,
        ktime_ns: u64,
    },
    UdpFlow {
        key: UdpKey,
        inbound: bool,
    },
    /// First bytes of a payload, for naming and request heads.
    Payload {
        tgid: u32,
        sock: u64,
        kind: PayloadKind,
        /// See `PayloadEvent::marks`.
        marks: [u64; 2],
        data: Vec<u8>,
    },
    /// The policy refused a connect() (or a sendmsg(), `udp`) of `tgid`.
    PolicyBlock {
        tgid: u32,
        /// Index into the rule labels of the policy in force.
        rule: u32,
        remote: std::net::SocketAddr,
        udp: bool,
    },
}

/// Reads a `T` from the start of `bytes`, if it is long enough.
fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    // SAFETY: length checked; T is a plain #[repr(C)] wire type.
    (bytes.len() >= size_of::<T>()).then(|| unsafe { read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Decodes one record; `None` for a record too short for its kind or of an
/// unknown kind (a newer kernel object than this daemon): the reader counts
/// those in `agentmon_events_undecoded_total`.
pub fn decode(bytes: &[u8]) -> Option<Event> {
    let header: EventHeader = read(bytes)?;
    Some(match header.kind {
        kind::EXEC => {
            let e: ExecEvent = read(bytes)?;
            let len = (e.filename_len as usize).min(e.filename.len());
            let args = (e.args_len as usize).min(e.args.len());
            Event::Exec {
                tgid: header.tgid,
                untracked: e.untracked != 0,
                filename: String::from_utf8_lossy(&e.filename[..len]).into_owned(),
                argv: parse_cmdline(&e.args[..args]),
                exe_ino: (e.exe_ino != 0).then_some(e.exe_ino),
            }
        }
        kind::FORK => {
            let e: ForkEvent = read(bytes)?;
            Event::Fork {
                parent: header.tgid,
                child: e.child_tgid,
            }
        }
        kind::EXIT => Event::Exit { tgid: header.tgid },
        kind::CONN_OPEN => {
            let e: ConnEvent = read(bytes)?;
            Event::ConnOpen {
                sock: e.sock,
                conn: e.conn,
            }
        }
        kind::CONN_CLOSE => {
            let e: ConnEvent = read(bytes)?;
            Event::ConnClose {
                sock: e.sock,
                conn: e.conn,
                ktime_ns: header.ktime_ns,
            }
        }
        kind::UDP_FLOW => {
            let e: UdpFlowEvent = read(bytes)?;
            Event::UdpFlow {
                key: e.key,
                inbound: e.inbound != 0,
            }
        }
        kind::PAYLOAD => {
            let e: PayloadEvent = read(bytes)?;
            let len = (e.len as usize).min(e.data.len());
            Event::Payload {
                tgid: header.tgid,
                sock: e.sock,
                kind: PayloadKind::from_wire(e.kind)?,
                marks: e.marks,
                data: e.data[..len].to_vec(),
            }
        }
        kind::POLICY_BLOCK => {
            let e: PolicyBlockEvent = read(bytes)?;
            // The kernel writes IPv4 as IPv4-mapped IPv6; this makes it IPv4.
            let ip = crate::traffic::ip(AF_INET6, &e.addr);
            Event::PolicyBlock {
                tgid: header.tgid,
                rule: e.rule,
                remote: std::net::SocketAddr::new(ip, e.port),
                udp: e.proto == IPPROTO_UDP,
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use monitor_common::{EXEC_ARGS_LEN, EXEC_FILENAME_LEN};

    use super::*;

    fn bytes_of<T>(value: &T) -> Vec<u8> {
        // SAFETY: test-only view of a plain wire struct.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
            .to_vec()
    }

    #[test]
    fn decodes_exec_with_its_filename() {
        let mut filename = [0u8; EXEC_FILENAME_LEN];
        filename[..9].copy_from_slice(b"/bin/true");
        let mut args = [0u8; EXEC_ARGS_LEN];
        args[..13].copy_from_slice(b"true\0--help\0\0");
        let e = ExecEvent {
            header: EventHeader {
                kind: kind::EXEC,
                tgid: 42,
                ktime_ns: 7,
            },
            untracked: 1,
            filename_len: 9,
            filename,
            args_len: 12,
            _pad: 0,
            exe_ino: 1234,
            args,
        };
        assert_eq!(
            decode(&bytes_of(&e)),
            Some(Event::Exec {
                tgid: 42,
                untracked: true,
                filename: "/bin/true".into(),
                argv: vec!["true".into(), "--help".into()],
                exe_ino: Some(1234),
            })
        );
    }

    #[test]
    fn decodes_conn_close_with_counts() {
        let e = ConnEvent {
            header: EventHeader {
                kind: kind::CONN_CLOSE,
                tgid: 9,
                ktime_ns: 100,
            },
            sock: 0xffff_8888,
            conn: Conn {
                tgid: 9,
                tx_bytes: 1234,
                rx_bytes: 99,
                ..Conn::default()
            },
        };
        let Some(Event::ConnClose {
            sock,
            conn,
            ktime_ns,
        }) = decode(&bytes_of(&e))
        else {
            panic!("not a close")
        };
        assert_eq!(
            (sock, conn.tx_bytes, conn.rx_bytes, ktime_ns),
            (0xffff_8888, 1234, 99, 100)
        );
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        let header = EventHeader {
            kind: kind::CONN_OPEN,
            tgid: 1,
            ktime_ns: 0,
        };
        assert_eq!(decode(&bytes_of(&header)), None);
        assert_eq!(decode(&[1, 2, 3]), None);
        let unknown = EventHeader {
            kind: 999,
            ..header
        };
        assert_eq!(decode(&bytes_of(&unknown)), None);
    }
}
