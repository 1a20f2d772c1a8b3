//! One allow or deny rule of the egress policy: its conditions, how they
//! match a destination, and how specific the rule is.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

/// A host condition: `api.example.com`, or `*.example.com` (any name
/// under it, not the name itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    /// The suffix with its leading dot: `.example.com`.
    Under(String),
}

impl HostPattern {
    /// `text` is lower case and checked by the caller.
    pub fn new(text: &str) -> HostPattern {
        match text.strip_prefix("*.") {
            Some(rest) => HostPattern::Under(format!(".{rest}")),
            None => HostPattern::Exact(text.to_owned()),
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => host.eq_ignore_ascii_case(name),
            HostPattern::Under(suffix) => {
                host.len() > suffix.len()
                    && host.as_bytes()[host.len() - suffix.len()..]
                        .eq_ignore_ascii_case(suffix.as_bytes())
            }
        }
    }

    pub fn text(&self) -> String {
        match self {
            HostPattern::Exact(name) => name.clone(),
            HostPattern::Under(suffix) => format!("*{suffix}"),
        }
    }
}

/// A rule: every condition it has must hold (at least one is required).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    /// The `rule` label of violations: the rule's `name`, else
    /// `<tool or *>:<allow or deny>:<n>`.
    pub label: String,
    pub host: Option<HostPattern>,
    /// A registrable domain: `example.com` matches it and every name under
    /// it.
    pub domain: Option<String>,
    pub purpose: Option<&'static str>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<String>,
    pub asn: Option<u32>,
    pub cidr: Option<IpNetwork>,
    pub port: Option<u16>,
}

/// What is known of a destination when it is judged.
#[derive(Debug, Clone, Default)]
pub struct Target<'a> {
    /// The name that won (SNI, HTTP Host, the tree's DNS answer).
    pub host: Option<&'a str>,
    pub ip: Option<IpAddr>,
    /// `None`: not known yet (a DNS answer): port conditions then hold.
    pub port: Option<u16>,
    pub country: Option<&'a str>,
    pub asn: Option<u32>,
    pub purpose: Option<&'a str>,
}

impl Rule {
    pub fn matches(&self, t: &Target<'_>) -> bool {
        fn holds<C, V>(cond: &Option<C>, value: Option<V>, f: impl Fn(&C, V) -> bool) -> bool {
            match cond {
                None => true,
                Some(c) => value.is_some_and(|v| f(c, v)),
            }
        }
        holds(&self.host, t.host, |p, h| p.matches(h))
            && holds(&self.domain, t.host, |d, h| {
                HostPattern::Exact(d.clone()).matches(h)
                    || HostPattern::Under(format!(".{d}")).matches(h)
            })
            && holds(&self.purpose, t.purpose, |p, v| *p == v)
            && holds(&self.country, t.country, |c, v| c.eq_ignore_ascii_case(v))
            && holds(&self.asn, t.asn, |a, v| *a == v)
            && holds(&self.cidr, t.ip, contains)
            && match (self.port, t.port) {
                (Some(p), Some(v)) => p == v,
                _ => true,
            }
    }

    /// Higher is more specific: an exact host over a wildcard (longer
    /// suffixes first) over a domain over a network (longer prefixes
    /// first) over an ASN over a country over a purpose; each extra
    /// condition (a port) adds to it.
    pub fn specificity(&self) -> u32 {
        let mut s = 0;
        s += match &self.host {
            Some(HostPattern::Exact(_)) => 10_000,
            Some(HostPattern::Under(suffix)) => 5_000 + 10 * suffix.matches('.').count() as u32,
            None => 0,
        };
        if self.domain.is_some() {
            s += 4_000;
        }
        if let Some(net) = &self.cidr {
            // IPv4 prefixes count as their IPv6-mapped length.
            let prefix = match net {
                IpNetwork::V4(n) => u32::from(n.prefix()) + 96,
                IpNetwork::V6(n) => u32::from(n.prefix()),
            };
            s += 2_000 + prefix;
        }
        if self.asn.is_some() {
            s += 1_500;
        }
        if self.country.is_some() {
            s += 1_000;
        }
        if self.purpose.is_some() {
            s += 500;
        }
        if self.port.is_some() {
            s += 5;
        }
        s
    }

    /// Whether the rule can be decided from an address and a port alone,
    /// as the kernel decides at connect().
    pub fn by_address(&self) -> bool {
        self.host.is_none() && self.domain.is_none() && self.purpose.is_none()
    }
}

/// An IPv4 network also holds the IPv4-mapped IPv6 form of its addresses.
fn contains(net: &IpNetwork, ip: IpAddr) -> bool {
    net.contains(ip.to_canonical())
}
