//! What the kernel needs to enforce a policy: the enforced tools, the
//! networks their deny rules name (CIDRs as written; countries and ASNs
//! expanded from the GeoIP databases), and the table of rule labels the
//! kernel's block events refer to by index.
//!
//! Only rules the kernel can decide from an address and a port are
//! enforced at connect(): `cidr`, `country`, `asn`, `port`. A rule on a
//! host, domain or purpose is enforced for addresses the same process tree
//! resolved from a matching name (the daemon adds them as DNS answers
//! arrive); a connection it cannot judge at connect() is judged when it is
//! named, and a violation then is logged with `blocked: false`.

use std::{collections::HashMap, net::Ipv6Addr};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use monitor_common::{POLICY_ALL, POLICY_PORTS, PolicyDeny};

use super::{ALL, Policy, Verdict, rule::Rule};
use crate::{agents::ToolId, geoip::GeoIp};

/// Networks the kernel map holds, in all.
pub const MAX_NETS: usize = 1 << 19;

#[derive(Debug, Default)]
pub struct Plan {
    /// Rule labels; the kernel's `PolicyDeny::rule` indexes this.
    pub labels: Vec<String>,
    pub tools: Vec<ToolId>,
    /// (a tool, or [`POLICY_ALL`] for the `*` entry; network; denial).
    pub nets: Vec<(u32, IpNetwork, PolicyDeny)>,
    /// One line each: what could not be enforced.
    pub warnings: Vec<String>,
}

impl Plan {
    /// The index of `label` in the table, added if new.
    pub fn label_index(&mut self, label: &str) -> u32 {
        let i = match self.labels.iter().position(|l| l == label) {
            Some(i) => i,
            None => {
                self.labels.push(label.to_owned());
                self.labels.len() - 1
            }
        };
        i as u32
    }

    /// The kernel value for `verdict` (a deny): its rule and port.
    pub fn deny(&mut self, verdict: &Verdict) -> PolicyDeny {
        PolicyDeny {
            rule: self.label_index(&verdict.rule),
            ports: ports(verdict.port),
        }
    }
}

fn ports(port: Option<u16>) -> [u16; POLICY_PORTS] {
    let mut ports = [0; POLICY_PORTS];
    ports[0] = port.unwrap_or(0);
    ports
}

/// A denied network's rule and ports (`None`: every port).
type Entry = (u32, Option<Vec<u16>>);

/// Networks read from the GeoIP databases for one rule, at most, before
/// they are merged.
const MAX_READ: usize = 1 << 22;

/// Builds the kernel side of `policy` for the tools `tools` (id, name).
/// Each entry's deny rules are kept once: a tool's under its id, the `*`
/// entry's under [`POLICY_ALL`] (the kernel looks at both). A rule whose
/// networks do not fit in what is left of the kernel map is left out
/// whole, with a warning: it is then judged when connections are named.
pub fn plan(policy: &Policy, tools: &[(ToolId, &str)], geoip: &GeoIp) -> Plan {
    let mut plan = Plan {
        tools: tools
            .iter()
            .filter(|(_, name)| policy.enforced(name))
            .map(|(id, _)| *id)
            .collect(),
        ..Plan::default()
    };
    if plan.tools.is_empty() {
        return plan;
    }
    let mut entries: HashMap<(u32, IpNetwork), Entry> = HashMap::new();
    let mut names: Vec<&String> = policy.scopes.keys().collect();
    names.sort();
    for name in names {
        let key = if name == ALL {
            POLICY_ALL
        } else {
            match tools.iter().find(|(_, n)| n == name) {
                Some((id, _)) if policy.enforced(name) => *id,
                _ => continue,
            }
        };
        for rule in policy.scopes[name].deny.iter().filter(|r| r.by_address()) {
            let nets = match networks(rule, geoip) {
                Ok(nets) => nets,
                Err(why) => {
                    plan.warnings.push(format!("rule {} ({name}) {why}: it is judged when connections are named, not refused at connect()", rule.label));
                    continue;
                }
            };
            let new = nets
                .iter()
                .filter(|n| !entries.contains_key(&(key, **n)))
                .count();
            if entries.len() + new > MAX_NETS {
                plan.warnings.push(format!(
                    "rule {} ({name}) needs {new} networks and the kernel map has room for {} more of its {MAX_NETS}: it is judged when connections are named, not refused at connect()",
                    rule.label,
                    MAX_NETS - entries.len()
                ));
                continue;
            }
            let index = plan.label_index(&rule.label);
            for net in nets {
                let entry = entries
                    .entry((key, net))
                    .or_insert((index, Some(Vec::new())));
                match (&mut entry.1, rule.port) {
                    (Some(ports), Some(port)) if !ports.contains(&port) => ports.push(port),
                    (slot, None) => *slot = None,
                    _ => {}
                }
            }
        }
    }
    for ((key, net), (rule, list)) in entries {
        let mut deny = PolicyDeny {
            rule,
            ports: [0; POLICY_PORTS],
        };
        if let Some(list) = list {
            if list.len() > POLICY_PORTS {
                plan.warnings.push(format!("{net} is denied on {} ports; the kernel refuses {POLICY_PORTS} per network, the others are judged when connections are named", list.len()));
            }
            for (slot, port) in deny.ports.iter_mut().zip(list) {
                *slot = port;
            }
        }
        plan.nets.push((key, net, deny));
    }
    plan
}

/// The networks a rule that the kernel can judge by address denies: its
/// CIDR (or every address, for a rule on a port alone), or its country's
/// or AS's networks within it, merged; `Err` says why there are none.
fn networks(rule: &Rule, geoip: &GeoIp) -> Result<Vec<IpNetwork>, String> {
    if rule.country.is_none() && rule.asn.is_none() {
        return Ok(vec![rule.cidr.unwrap_or_else(|| "::/0".parse().unwrap())]);
    }
    let nets = geoip
        .networks(rule.country.as_deref(), rule.asn, MAX_READ)
        .map_err(|n| format!("covers more than {n} networks in the GeoIP databases"))?;
    if nets.is_empty() {
        return Err("names networks the GeoIP databases do not have (or none are loaded)".into());
    }
    let within: Vec<IpNetwork> = nets
        .into_iter()
        .filter_map(|n| narrower(n, rule.cidr))
        .collect();
    Ok(aggregate(&within))
}

/// The fewest networks that cover exactly the addresses of `nets`:
/// adjacent and nested ones merged (rules' CIDRs can overlap, and some
/// databases list neighbouring blocks of one country apart; DB-IP's
/// country file is merged already). IPv4 stays IPv4.
pub fn aggregate(nets: &[IpNetwork]) -> Vec<IpNetwork> {
    let mut ranges: Vec<(u128, u128)> = nets.iter().map(|n| range(*n)).collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u128, u128)> = Vec::new();
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 || (last.1 != u128::MAX && start == last.1 + 1) => {
                last.1 = last.1.max(end);
            }
            _ => merged.push((start, end)),
        }
    }
    let mut out = Vec::new();
    for (mut start, end) in merged {
        loop {
            // The largest aligned block that starts at `start` and ends by `end`.
            let mut bits = start.trailing_zeros();
            let last = loop {
                let last = if bits == 128 {
                    u128::MAX
                } else {
                    start | ((1u128 << bits) - 1)
                };
                if last <= end {
                    break last;
                }
                bits -= 1;
            };
            out.push(network(start, 128 - bits));
            if last == end {
                break;
            }
            start = last + 1;
        }
    }
    out
}

/// The network as the kernel keys it: IPv4 as IPv4-mapped IPv6, with its
/// prefix length counted that way.
pub fn mapped(net: IpNetwork) -> (u128, u32) {
    match net {
        IpNetwork::V4(n) => (
            u128::from(n.network().to_ipv6_mapped()),
            96 + u32::from(n.prefix()),
        ),
        IpNetwork::V6(n) => (u128::from(n.network()), u32::from(n.prefix())),
    }
}

/// First and last address of `net`, IPv4 as IPv4-mapped IPv6.
fn range(net: IpNetwork) -> (u128, u128) {
    let (addr, prefix) = mapped(net);
    let host = if prefix == 0 {
        u128::MAX
    } else {
        (1u128 << (128 - prefix)) - 1
    };
    (addr, addr | host)
}

/// The network at `start` with `prefix` bits (of IPv6), as IPv4 when it
/// lies in the IPv4-mapped block.
fn network(start: u128, prefix: u32) -> IpNetwork {
    let v6 = Ipv6Addr::from(start);
    match v6.to_ipv4_mapped() {
        Some(v4) if prefix >= 96 => {
            IpNetwork::V4(Ipv4Network::new(v4, (prefix - 96) as u8).unwrap())
        }
        _ => IpNetwork::V6(Ipv6Network::new(v6, prefix as u8).unwrap()),
    }
}

/// The part of `net` inside `within` (the narrower of two nested
/// networks), or `None` when they do not overlap.
fn narrower(net: IpNetwork, within: Option<IpNetwork>) -> Option<IpNetwork> {
    let Some(outer) = within else {
        return Some(net);
    };
    if outer.contains(net.network()) && outer.prefix() <= net.prefix() {
        Some(net)
    } else if net.contains(outer.network()) && net.prefix() <= outer.prefix() {
        Some(outer)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNetwork> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn neighbours_and_nested_networks_merge_into_the_fewest() {
        let got = aggregate(&nets(&[
            "10.0.0.128/25",
            "10.0.0.0/25",
            "10.0.1.0/24",
            "10.0.2.0/24",
            "10.0.2.7/32",
        ]));
        assert_eq!(got, nets(&["10.0.0.0/23", "10.0.2.0/24"]));
        // A range that is no single block splits at its alignment.
        assert_eq!(
            aggregate(&nets(&["192.0.2.1/32", "192.0.2.2/31", "192.0.2.4/32"])),
            nets(&["192.0.2.1/32", "192.0.2.2/31", "192.0.2.4/32"])
        );
        assert_eq!(
            aggregate(&nets(&["192.0.2.0/26", "192.0.2.64/26", "192.0.2.128/25"])),
            nets(&["192.0.2.0/24"])
        );
        // IPv6, the whole space, and the two families apart.
        assert_eq!(
            aggregate(&nets(&["2001:db8::/33", "2001:db8:8000::/33"])),
            nets(&["2001:db8::/32"])
        );
        assert_eq!(
            aggregate(&nets(&["::/0", "2001:db8::/32"])),
            nets(&["::/0"])
        );
        assert_eq!(aggregate(&nets(&["0.0.0.0/0"])), nets(&["0.0.0.0/0"]));
        assert_eq!(
            aggregate(&nets(&["198.51.100.0/24", "2001:db8::/32"])),
            nets(&["198.51.100.0/24", "2001:db8::/32"])
        );
        assert!(aggregate(&[]).is_empty());
    }

    #[test]
    fn the_star_entry_is_kept_once_with_its_ports_and_unknown_countries_are_left_out() {
        let text = "[[policy.tool]]\nname = \"*\"\nenforce = true\ndeny = [ { cidr = \"192.0.2.0/24\", port = 25 }, { cidr = \"192.0.2.0/24\", port = 465 }, { port = 23 } ]\n[[policy.tool]]\nname = \"codex\"\ndeny = [ { cidr = \"198.51.100.0/24\", name = \"no-de\" } ]\n";
        let loaded = crate::config::parse(text, std::path::Path::new("a.toml")).unwrap();
        let tools: Vec<(ToolId, &str)> = loaded
            .agents
            .names()
            .map(|n| (loaded.agents.id(n).unwrap(), n))
            .collect();
        let planned = plan(&loaded.policy, &tools, &GeoIp::disabled());
        assert_eq!(planned.tools.len(), tools.len());
        let codex = loaded.agents.id("codex").unwrap();
        let mut got: Vec<(u32, String, [u16; POLICY_PORTS], &str)> = planned
            .nets
            .iter()
            .map(|(k, n, d)| {
                (
                    *k,
                    n.to_string(),
                    d.ports,
                    planned.labels[d.rule as usize].as_str(),
                )
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                (codex, "198.51.100.0/24".into(), [0; POLICY_PORTS], "no-de"),
                (
                    POLICY_ALL,
                    "192.0.2.0/24".into(),
                    [25, 465, 0, 0, 0, 0],
                    "*:deny:1"
                ),
                (POLICY_ALL, "::/0".into(), [23, 0, 0, 0, 0, 0], "*:deny:3"),
            ]
        );
        // A country no database knows is left to the named judgement.
        let text =
            "[[policy.tool]]\nname = \"codex\"\nenforce = true\ndeny = [ { country = \"DE\" } ]\n";
        let loaded = crate::config::parse(text, std::path::Path::new("a.toml")).unwrap();
        let planned = plan(&loaded.policy, &tools, &GeoIp::disabled());
        assert!(planned.nets.is_empty());
        assert_eq!(planned.warnings.len(), 1, "{:?}", planned.warnings);
        assert!(
            planned.warnings[0]
                .contains("codex:deny:1 (codex) names networks the GeoIP databases do not have")
        );
    }
}
