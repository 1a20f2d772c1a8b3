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

use std::collections::HashMap;

use ipnetwork::IpNetwork;
use monitor_common::{POLICY_PORTS, PolicyDeny};

use super::{Policy, Verdict};
use crate::{agents::ToolId, geoip::GeoIp};

/// At most this many networks per country or ASN rule, and in all: the
/// kernel map's size.
pub const MAX_NETS: usize = 65_536;

#[derive(Debug, Default)]
pub struct Plan {
    /// Rule labels; the kernel's `PolicyDeny::rule` indexes this.
    pub labels: Vec<String>,
    pub tools: Vec<ToolId>,
    pub nets: Vec<(ToolId, IpNetwork, PolicyDeny)>,
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

/// Builds the kernel side of `policy` for the tools `tools` (id, name).
pub fn plan(policy: &Policy, tools: &[(ToolId, &str)], geoip: &GeoIp) -> Plan {
    let mut plan = Plan::default();
    let mut entries: HashMap<(ToolId, IpNetwork), Entry> = HashMap::new();
    for &(id, name) in tools {
        if !policy.enforced(name) {
            continue;
        }
        plan.tools.push(id);
        for (_, scope) in policy.scopes_of(name) {
            for rule in scope.deny.iter().filter(|r| r.by_address()) {
                let nets = match (rule.country.as_deref(), rule.asn) {
                    (None, None) => vec![rule.cidr.unwrap_or_else(|| "::/0".parse().unwrap())],
                    (country, asn) => match geoip.networks(country, asn, MAX_NETS) {
                        Ok(nets) if nets.is_empty() => {
                            plan.warnings.push(format!("rule {} of tool {name} names networks the GeoIP databases do not have (or none are loaded): it is judged when connections are named, not refused at connect()", rule.label));
                            Vec::new()
                        }
                        Ok(nets) => nets
                            .into_iter()
                            .filter_map(|n| narrower(n, rule.cidr))
                            .collect(),
                        Err(n) => {
                            plan.warnings.push(format!("rule {} of tool {name} covers more than {n} networks: it is judged when connections are named, not refused at connect()", rule.label));
                            Vec::new()
                        }
                    },
                };
                let index = plan.label_index(&rule.label);
                for net in nets {
                    let entry = entries
                        .entry((id, net))
                        .or_insert((index, Some(Vec::new())));
                    match (&mut entry.1, rule.port) {
                        (Some(ports), Some(port)) if !ports.contains(&port) => ports.push(port),
                        (slot, None) => *slot = None,
                        _ => {}
                    }
                }
            }
        }
    }
    for ((tool, net), (rule, list)) in entries {
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
        plan.nets.push((tool, net, deny));
    }
    if plan.nets.len() > MAX_NETS {
        plan.warnings.push(format!(
            "the policy denies {} networks; the kernel holds {MAX_NETS}",
            plan.nets.len()
        ));
        plan.nets.truncate(MAX_NETS);
    }
    plan
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
