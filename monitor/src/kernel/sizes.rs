//! `[kernel]`: how many entries the bounded kernel maps hold. The defaults
//! fit a developer machine with room to spare; a build server running many
//! agents may want more, a small VM less. Past a map's size, what it would
//! have held is counted in `agentmon_kernel_map_full_total{map}` (or, for
//! the LRU maps, what they forgot in `agentmon_kernel_map_evictions_total`),
//! never silently lost. Sizes take effect at start (the kernel fixes a map's size
//! when it is made); a pinned map of another size is replaced, and counting
//! starts afresh.

use serde::{Deserialize, Deserializer};

use monitor_common::capacity;

/// Fewer entries than this would be full on any desktop.
pub const MIN: u32 = 1_024;
/// More than this costs hundreds of MiB of locked kernel memory for
/// `conns` alone (about 280 bytes an entry).
pub const MAX: u32 = 1_048_576;

/// Declares the sizable maps: the config key (also the map's name in
/// metrics), the map's name in the eBPF object and its built-in size.
macro_rules! sizes {
    ($($(#[$doc:meta])* $key:ident: $object:literal = $default:expr;)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
        // A key left out keeps its built-in size (`Default`).
        #[serde(default, deny_unknown_fields)]
        pub struct MapSizes {
            $(
                $(#[$doc])*
                #[serde(deserialize_with = "size")]
                pub $key: u32,
            )*
        }

        impl Default for MapSizes {
            fn default() -> Self {
                Self { $($key: $default,)* }
            }
        }

        impl MapSizes {
            /// (the map's name in the eBPF object, its name in metrics, its size).
            pub fn maps(&self) -> Vec<(&'static str, &'static str, u32)> {
                vec![$(($object, stringify!($key), self.$key),)*]
            }
        }
    };
}

sizes! {
    /// Processes of agents' trees (and pending ones).
    tracked: "TRACKED" = capacity::TRACKED;
    /// TCP connections of agents' trees, open at once.
    conns: "CONNS" = capacity::CONNS;
    /// Labels user space gave connections opened while their process was
    /// pending, newest kept (LRU).
    resolved: "RESOLVED" = capacity::RESOLVED;
    /// UDP flows of agents' trees.
    udp_flows: "UDP_FLOWS" = capacity::UDP_FLOWS;
    /// Threads of agents inside a TLS library call (LRU).
    tls_calls: "TLS_CALLS" = capacity::TLS_CALLS;
    /// Agents' TLS sessions, each tied to its socket (LRU).
    ssl_socks: "SSL_SOCKS" = capacity::SSL_SOCKS;
    /// Threads whose in-memory TLS write waits for its socket (LRU).
    tls_pending: "TLS_PENDING" = capacity::TLS_PENDING;
    /// Go `crypto/tls` calls in flight, by goroutine (LRU).
    go_calls: "GO_CALLS" = capacity::GO_CALLS;
    /// Request heads written before their socket was known (LRU).
    tls_heads: "TLS_HEADS" = capacity::TLS_HEADS;
    /// Addresses of names the policy denies, per tree (LRU).
    policy_hosts: "POLICY_HOSTS" = capacity::POLICY_HOSTS;
    /// The socket each thread of an agent last received on (LRU).
    rx_socks: "RX_SOCKS" = capacity::RX_SOCKS;
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = i64::deserialize(d)?;
    u32::try_from(n)
        .ok()
        .filter(|n| (MIN..=MAX).contains(n))
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "a map size of {n} entries is out of range; give {MIN} to {MAX}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Doc {
        #[serde(default)]
        kernel: MapSizes,
    }

    #[test]
    fn defaults_are_the_built_in_sizes_and_each_can_be_set() {
        let d: Doc = toml::from_str("").unwrap();
        assert_eq!(d.kernel, MapSizes::default());
        assert_eq!(d.kernel.conns, 65_536);
        let d: Doc = toml::from_str("[kernel]\nconns = 4096\n").unwrap();
        assert_eq!((d.kernel.conns, d.kernel.tracked), (4096, 65_536));
        let d: Doc = toml::from_str("[kernel]\ntls_heads = 4096\n").unwrap();
        let sizes = d.kernel.maps();
        assert!(
            sizes.contains(&("TLS_HEADS", "tls_heads", 4096)),
            "{sizes:?}"
        );
        assert!(
            sizes.contains(&("SSL_SOCKS", "ssl_socks", 65_536)),
            "{sizes:?}"
        );
        assert_eq!(sizes.len(), 11);
    }

    #[test]
    fn sizes_out_of_range_and_unknown_maps_name_the_fix() {
        let e = toml::from_str::<Doc>("[kernel]\nconns = 10\n").unwrap_err();
        assert!(e.to_string().contains("give 1024 to 1048576"), "{e}");
        let e = toml::from_str::<Doc>("[kernel]\nconns = -1\n").unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        let e = toml::from_str::<Doc>("[kernel]\nconn = 4096\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `conn`"), "{e}");
    }
}
