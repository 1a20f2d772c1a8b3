//! Networks that announce the same addresses from many countries.
//!
//! An anycast address is answered by whichever of the network's sites is
//! nearest to the client, so the country a database gives for it is only
//! where the block is registered (the default databases put Cloudflare's
//! 104.16.0.0/13 in CA). Its `dest_country` is [`ANYCAST`] instead: telling
//! the truth is better than a country that pages the on-call for every
//! model call. The network (`dest_asn`) is still exact.
//!
//! Only networks whose whole address space serves from anycast belong
//! here. Clouds that also sell anycast (Google, Amazon, Microsoft) keep
//! their countries: most of their addresses are regional.

use std::collections::BTreeSet;

/// `dest_country` of an address in a known anycast network.
pub const ANYCAST: &str = "anycast";

/// The built-in list: (ASN, who). `[geoip] anycast_asns` adds to it.
pub const BUILTIN_ANYCAST: &[(u32, &str)] = &[
    (13335, "Cloudflare"),
    (209242, "Cloudflare (Spectrum, WARP)"),
    (54113, "Fastly"),
    (19551, "Imperva Incapsula"),
];

/// The ASNs whose addresses are labelled [`ANYCAST`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anycast {
    asns: BTreeSet<u32>,
}

impl Default for Anycast {
    fn default() -> Self {
        Anycast::new(&[])
    }
}

impl Anycast {
    /// The built-in list plus `extra`.
    pub fn new(extra: &[u32]) -> Anycast {
        let builtin = BUILTIN_ANYCAST.iter().map(|&(asn, _)| asn);
        Anycast {
            asns: builtin.chain(extra.iter().copied()).collect(),
        }
    }

    pub fn contains(&self, asn: u32) -> bool {
        self.asns.contains(&asn)
    }

    /// Who runs `asn`, when it is on the built-in list.
    pub fn builtin_name(asn: u32) -> Option<&'static str> {
        BUILTIN_ANYCAST
            .iter()
            .find_map(|&(n, who)| (n == asn).then_some(who))
    }
}
