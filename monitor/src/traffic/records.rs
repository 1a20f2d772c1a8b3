//! TLS plaintext derived from record framing, for connections no probe
//! sees (monitor-ebpf's records.rs follows the headers; this reads what it
//! found).
//!
//! Egress is exact for TLS 1.3 without padding: every record the client
//! sends after its Finished is data, except 19-byte ones, taken as its
//! close_notify alert (a 2-byte write is taken for one too). Ingress also
//! holds the session tickets the server sends after the handshake: their
//! headers look like data.
//!
//! TLS 1.2 is exact both ways for the AEAD suites, whose records carry a
//! fixed overhead (RFC 5288, 6655, 7905): its content types are in the
//! clear (alerts and tickets are not data records). CBC suites pad to
//! their block size, so nothing is derived for them.

use monitor_common::{Records, record_state as state};

/// The plaintext (sent, received) derived from the records: `None` until
/// the client sent data (after its Finished, in TLS 1.3), and for TLS 1.2
/// suites whose overhead per record is not fixed.
pub fn derived(r: &Records) -> Option<(u64, u64)> {
    if r.tx_records == 0 {
        return None;
    }
    if r.tx_state & state::FINISHED != 0 {
        return Some((r.tx_plain, r.rx_plain));
    }
    if r.tx_state & state::NOT_TLS13 == 0 {
        return None;
    }
    let overhead = tls12_overhead(r.cipher)?;
    let plain = |bodies: u64, records: u32| bodies.saturating_sub(overhead * u64::from(records));
    Some((
        plain(r.tx_plain, r.tx_records),
        plain(r.rx_plain, r.rx_records),
    ))
}

/// Bytes a TLS 1.2 record of `suite` adds to its plaintext, for suites
/// that add a fixed amount.
pub fn tls12_overhead(suite: u16) -> Option<u64> {
    match suite {
        // AES-GCM (RSA, DHE, ECDHE, PSK): 8-byte explicit nonce, 16-byte tag.
        0x009c..=0x00ad | 0xc02b..=0xc032 | 0xd001..=0xd002 => Some(24),
        // AES-CCM: 8-byte explicit nonce, then a 16-byte tag, or 8 (CCM_8).
        0xc09c..=0xc09f | 0xc0a4..=0xc0a7 | 0xc0ac..=0xc0ad => Some(24),
        0xc0a0..=0xc0a3 | 0xc0a8..=0xc0ab | 0xc0ae..=0xc0af => Some(16),
        // ChaCha20-Poly1305: implicit nonce, 16-byte tag.
        0xcca8..=0xccae => Some(16),
        _ => None,
    }
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
        assert_eq!(derived(&Records::default()), None);
    }

    #[test]
    fn tls12_is_derived_for_fixed_overhead_suites_only() {
        let tls12 = state::FOLLOWED | state::NOT_TLS13;
        let mut r = Records {
            tx_state: tls12,
            rx_state: state::FOLLOWED,
            tx_plain: 1024 + 2 * 24,
            tx_records: 2,
            rx_plain: 300 + 24,
            rx_records: 1,
            // ECDHE-RSA-AES256-GCM-SHA384
            cipher: 0xc030,
            ..Records::default()
        };
        assert_eq!(derived(&r), Some((1024, 300)));
        assert!(unprobed(&r));
        // ECDHE-RSA-CHACHA20-POLY1305: 16 a record.
        r.cipher = 0xcca8;
        assert_eq!(derived(&r), Some((1024 + 16, 300 + 8)));
        // ECDHE-RSA-AES128-SHA (CBC), or no ServerHello seen: nothing.
        r.cipher = 0xc013;
        assert_eq!(derived(&r), None);
        r.cipher = 0;
        assert_eq!(derived(&r), None);
        assert!(!unprobed(&r));
        r.cipher = 0xc030;
        r.tx_records = 0;
        assert_eq!(derived(&r), None);
    }

    #[test]
    fn lost_either_way() {
        let mut r = records(state::FOLLOWED, 0);
        assert!(!lost(&r));
        r.rx_state |= state::LOST;
        assert!(lost(&r));
    }
}
