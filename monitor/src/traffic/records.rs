//! TLS plaintext derived from record framing, for connections no probe
//! sees (monitor-ebpf's records.rs follows the headers; this reads what it
//! found).
//!
//! Egress is exact for TLS 1.3 without padding: every record the client
//! sends after its Finished is data, except 19-byte ones, taken as its
//! close_notify alert (a 2-byte write is taken for one too). Ingress also
//! holds the session tickets the server sends after the handshake: their
//! headers look like data.

use monitor_common::{Records, record_state as state};

/// The plaintext (sent, received) derived from the records: `None` until
/// a TLS 1.3 client sent data after its Finished (and for anything else).
pub fn derived(r: &Records) -> Option<(u64, u64)> {
    (r.tx_state & state::FINISHED != 0 && r.tx_records > 0).then_some((r.tx_plain, r.rx_plain))
}

/// Whether the derived figures are the ones to use: no probe tied the
/// connection, or one tied it only after data went out (its library was
/// probed late), so its figures miss that data. A probe in time ties the
/// connection at its first data record, in the same program run that
/// counts that record.
pub fn unprobed(r: &Records) -> bool {
    let probed_in_time = r.tx_state & (state::PROBED | state::PROBED_LATE) == state::PROBED;
    !probed_in_time && derived(r).is_some()
}

/// Whether the framing was lost either way, so the derived figures stop
/// short of the connection's whole plaintext.
pub fn lost(r: &Records) -> bool {
    (r.tx_state | r.rx_state) & state::LOST != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(tx_state: u8, tx_records: u32) -> Records {
        Records {
            tx_state,
            rx_state: state::FOLLOWED | state::TLS13,
            tx_records,
            tx_plain: 1000,
            rx_plain: 2000,
            ..Records::default()
        }
    }

    #[test]
    fn derived_once_data_went_out_on_tls13_and_no_probe_saw_it() {
        let finished = state::FOLLOWED | state::FINISHED;
        assert_eq!(derived(&records(finished, 1)), Some((1000, 2000)));
        assert_eq!(derived(&records(finished, 0)), None);
        assert_eq!(derived(&records(state::FOLLOWED, 0)), None);
        assert!(unprobed(&records(finished, 1)));
        assert!(!unprobed(&records(finished | state::PROBED, 1)));
        let late = finished | state::PROBED | state::PROBED_LATE;
        assert!(unprobed(&records(late, 1)));
        assert!(!unprobed(&records(finished, 0)));
        let tls12 = state::FOLLOWED | state::NOT_TLS13;
        assert_eq!(derived(&records(tls12, 0)), None);
        assert_eq!(derived(&Records::default()), None);
    }

    #[test]
    fn lost_either_way() {
        let mut r = records(state::FOLLOWED, 0);
        assert!(!lost(&r));
        r.rx_state |= state::LOST;
        assert!(lost(&r));
    }
}
