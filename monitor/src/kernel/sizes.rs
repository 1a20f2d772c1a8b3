//! `[kernel]`: how many entries the bounded kernel maps hold. The defaults
//! fit a developer machine with room to spare; a build server running many
//! agents may want more, a small VM less. Past a map's size, what it would
//! have held is counted in `agentmon_kernel_map_full_total{map}`, never
//! silently lost. Sizes take effect at start (the kernel fixes a map's size
//! when it is made); a pinned map of another size is replaced, and counting
//! starts afresh.

use serde::{Deserialize, Deserializer};

use monitor_common::capacity;

/// Fewer entries than this would be full on any desktop.
pub const MIN: u32 = 1_024;
/// More than this costs hundreds of MiB of locked kernel memory for
/// `conns` alone (about 280 bytes an entry).
pub const MAX: u32 = 1_048_576;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapSizes {
    /// Processes of agents' trees (and pending ones).
    #[serde(default = "tracked", deserialize_with = "size")]
    pub tracked: u32,
    /// TCP connections of agents' trees, open at once.
    #[serde(default = "conns", deserialize_with = "size")]
    pub conns: u32,
    /// Labels user space gave connections opened while their process was
    /// pending, newest kept (LRU).
    #[serde(default = "resolved", deserialize_with = "size")]
    pub resolved: u32,
    /// UDP flows of agents' trees.
    #[serde(default = "udp_flows", deserialize_with = "size")]
    pub udp_flows: u32,
}

fn tracked() -> u32 {
    capacity::TRACKED
}
fn conns() -> u32 {
    capacity::CONNS
}
fn resolved() -> u32 {
    capacity::RESOLVED
}
fn udp_flows() -> u32 {
    capacity::UDP_FLOWS
}

impl Default for MapSizes {
    fn default() -> Self {
        Self {
            tracked: tracked(),
            conns: conns(),
            resolved: resolved(),
            udp_flows: udp_flows(),
        }
    }
}

impl MapSizes {
    /// (the map's name in the eBPF object, its name in metrics, its size).
    pub fn maps(&self) -> [(&'static str, &'static str, u32); 4] {
        [
            ("TRACKED", "tracked", self.tracked),
            ("CONNS", "conns", self.conns),
            ("RESOLVED", "resolved", self.resolved),
            ("UDP_FLOWS", "udp_flows", self.udp_flows),
        ]
    }
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
