//! The exported metrics. Names and labels are a contract with dashboards and
//! alert rules; label values come from the tool catalog or fixed enums only.

use std::{collections::HashMap, sync::Mutex, time::SystemTime};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder, core::Collector,
};

use crate::{
    agents::{Catalog, ToolId},
    saved::Series,
    traffic::{Counters, Dest, Direction, Proto},
    uprobes::TlsLib,
};

/// Labels of the byte counters. Values: tool names from the catalog, fixed
/// enums, and `dest` values bounded per tool (see `dest::cap`).
pub const DEST_LABELS: &[&str] = &[
    "tool",
    "proto",
    "dest",
    "dest_country",
    "dest_asn",
    "purpose",
];

pub struct Metrics {
    registry: Registry,
    pub egress_bytes: IntCounterVec,
    pub ingress_bytes: IntCounterVec,
    pub connections: IntCounterVec,
    pub dest_overflow: IntCounterVec,
    pub dest_network_overflow: IntCounterVec,
    pub dns_answers: IntCounterVec,
    pub tls_plaintext_bytes: IntCounterVec,
    pub http_requests: IntCounterVec,
    pub http_request_bytes: HistogramVec,
    pub tls_coverage: IntGaugeVec,
    pub uprobes_attached: IntGaugeVec,
    pub agent_processes: IntGaugeVec,
    pub events_lost: IntCounter,
    pub events_undecoded: IntCounter,
    pub tls_untied_bytes: IntCounter,
    pub tls_unseen_connections: IntCounterVec,
    pub tls_framing_lost: IntCounterVec,
    pub kernel_map_full: IntCounterVec,
    pub kernel_map_evictions: IntCounterVec,
    pub log_records_dropped: IntCounterVec,
    pub packets_unparsed: IntCounter,
    pub programs_attached: IntGauge,
    pub kernel_features: IntGaugeVec,
    pub kernel_map_entries: IntGaugeVec,
    pub kernel_map_capacity: IntGaugeVec,
    pub build_info: IntGaugeVec,
    pub geoip_built: IntGaugeVec,
    pub policy_violations: IntCounterVec,
    pub policy_enforced: IntGaugeVec,
    /// When bytes last moved, ms since the epoch, per tool and `dest`: for
    /// `agentmon top` (not exported: a timestamp per series is what
    /// Prometheus keeps itself).
    last_seen: Mutex<HashMap<String, HashMap<String, u64>>>,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let counter_vec =
            |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntCounterVec> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let egress_bytes = counter_vec(
            "agentmon_egress_bytes_total",
            "Payload bytes sent by the process trees of each AI coding agent.",
            DEST_LABELS,
        )?;
        let ingress_bytes = counter_vec(
            "agentmon_ingress_bytes_total",
            "Payload bytes received by the process trees of each AI coding agent.",
            DEST_LABELS,
        )?;
        let connections = counter_vec(
            "agentmon_connections_total",
            "TCP connections (and new UDP peers) of each agent's process trees.",
            &[
                "tool",
                "proto",
                "direction",
                "dest",
                "dest_country",
                "dest_asn",
                "purpose",
            ],
        )?;
        let dest_overflow = counter_vec(
            "agentmon_dest_overflow_total",
            "Connections labelled dest=\"other\" because the tool reached its cap of distinct dest values.",
            &["tool"],
        )?;
        let dest_network_overflow = counter_vec(
            "agentmon_dest_network_overflow_total",
            "Connections labelled dest_country=\"other\", dest_asn=\"other\" because the tool reached its cap of distinct (dest, dest_country, dest_asn) combinations.",
            &["tool"],
        )?;
        let dns_answers = counter_vec(
            "agentmon_dns_answers_total",
            "A and AAAA records in DNS answers the tool's processes received.",
            &["tool"],
        )?;
        let log_records_dropped = counter_vec(
            "agentmon_log_records_dropped_total",
            "Records agentmon could not write to a log file (log=connections or violations): the disk was full or the path could not be written; the metrics still count them.",
            &["log"],
        )?;
        // 0 from the start, with or without the logs, so an alert on an
        // increase sees the first drop.
        for log in ["connections", "violations"] {
            log_records_dropped.with_label_values(&[log]);
        }
        let kernel_map_full = counter_vec(
            "agentmon_kernel_map_full_total",
            "Times a kernel map was full, so a connection, flow or process went uncounted.",
            &["map"],
        )?;
        let kernel_map_evictions = counter_vec(
            "agentmon_kernel_map_evictions_total",
            "Entries an LRU kernel map dropped to make room since agentmon started: TLS calls, sessions, request heads or threads' last received sockets (tls_*, ssl_socks, go_calls, rx_socks) whose bytes or requests went uncounted, labels of pending connections (resolved), addresses of names a policy denies (policy_hosts).",
            &["map"],
        )?;
        let tls_plaintext_bytes = counter_vec(
            "agentmon_tls_plaintext_bytes_total",
            "Plaintext bytes the tool's processes handed to (or got from) a probed TLS library; library=\"record\": derived from TLS record framing where no probe fits (TLS 1.3, and TLS 1.2 with AEAD suites).",
            &["tool", "dest", "direction", "library"],
        )?;
        let http_requests = counter_vec(
            "agentmon_http_requests_total",
            "HTTP requests seen in plaintext (plain HTTP, or written to a probed TLS library).",
            &["tool", "dest", "method", "purpose"],
        )?;
        // 256 B to 16 MiB by fours: a telemetry ping to a large upload.
        let buckets = prometheus::exponential_buckets(256.0, 4.0, 9)?;
        let http_request_bytes = HistogramVec::new(
            HistogramOpts::new(
                "agentmon_http_request_bytes",
                "Plaintext bytes per HTTP request on a probed TLS connection: direction=egress is the request, ingress its response.",
            )
            .buckets(buckets),
            &["tool", "purpose", "direction"],
        )?;
        registry.register(Box::new(http_request_bytes.clone()))?;
        let gauge_vec =
            |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntGaugeVec> {
                let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(g.clone()))?;
                Ok(g)
            };
        let tls_coverage = gauge_vec(
            "agentmon_tls_coverage",
            "1 per tool and TLS library it uses: mode=plaintext when its TLS calls are probed (exact plaintext, request heads), mode=derived (library=record) when no probe fits: plaintext sizes from record framing (TLS 1.3, TLS 1.2 with AEAD suites), otherwise only SNI and sizes.",
            &["tool", "library", "mode"],
        )?;
        let uprobes_attached = gauge_vec(
            "agentmon_uprobes_attached",
            "TLS library probes (entry and return) attached, per library.",
            &["library"],
        )?;
        let agent_processes = IntGaugeVec::new(
            Opts::new(
                "agentmon_agent_processes",
                "Live processes in each tool's process trees.",
            ),
            &["tool"],
        )?;
        registry.register(Box::new(agent_processes.clone()))?;
        let events_lost = IntCounter::new(
            "agentmon_events_lost_total",
            "Kernel events dropped because the ring buffer was full.",
        )?;
        registry.register(Box::new(events_lost.clone()))?;
        let events_undecoded = IntCounter::new(
            "agentmon_events_undecoded_total",
            "Kernel event records agentmon could not decode (too short, or of a kind it does not know: a kernel object of another version).",
        )?;
        registry.register(Box::new(events_undecoded.clone()))?;
        let tls_untied_bytes = IntCounter::new(
            "agentmon_tls_untied_bytes_total",
            "TLS plaintext bytes of agents whose connection could not be found, so not counted per destination.",
        )?;
        registry.register(Box::new(tls_untied_bytes.clone()))?;
        let tls_unseen_connections = counter_vec(
            "agentmon_tls_connections_unseen_total",
            "The tool's TLS connections (a ClientHello was sent) that closed without any plaintext seen: no probe covered them and no size could be derived from their records (TLS 1.2 with a CBC suite, or no data sent).",
            &["tool"],
        )?;
        let tls_framing_lost = counter_vec(
            "agentmon_tls_framing_lost_total",
            "The tool's TLS connections with plaintext derived from record framing (library=\"record\") whose framing was lost on the way (a gap in the stream, or more records in one packet than followed): their derived plaintext stops short.",
            &["tool"],
        )?;
        let packets_unparsed = IntCounter::new(
            "agentmon_packets_unparsed_total",
            "Packets of agent sockets whose headers agentmon could not read (IPv6 extension headers, IP fragments); their bytes count with a later packet of the connection, or not at all for UDP.",
        )?;
        registry.register(Box::new(packets_unparsed.clone()))?;
        let kernel_features = gauge_vec(
            "agentmon_kernel_feature_available",
            "1 when an optional kernel feature is in use, 0 when agentmon runs without it (see the log line at start).",
            &["feature"],
        )?;
        let kernel_map_entries = gauge_vec(
            "agentmon_kernel_map_entries",
            "Entries in a bounded kernel map at the last housekeeping tick; against agentmon_kernel_map_capacity, how full it is.",
            &["map"],
        )?;
        let kernel_map_capacity = gauge_vec(
            "agentmon_kernel_map_capacity",
            "Entries a bounded kernel map holds at most; past it, agentmon_kernel_map_full_total counts what went uncounted.",
            &["map"],
        )?;
        let programs_attached = IntGauge::new(
            "agentmon_bpf_programs_attached",
            "eBPF programs agentmon has loaded and attached.",
        )?;
        registry.register(Box::new(programs_attached.clone()))?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "agentmon_build_info",
                "agentmon version, the git revision it was built from and the kernel it runs on (always 1).",
            ),
            &["version", "revision", "kernel"],
        )?;
        registry.register(Box::new(build_info.clone()))?;
        // A timestamp, as Prometheus convention has it: the age is `time() - x`.
        let geoip_built = gauge_vec(
            "agentmon_geoip_database_build_timestamp_seconds",
            "When the GeoIP database in use was built (its metadata's build_epoch), per database; absent while none is loaded.",
            &["database"],
        )?;
        let policy_violations = counter_vec(
            "agentmon_policy_violations_total",
            "Connections (and refused connects) of the tool that its egress policy does not allow: rule is the rule that decided (its name, <tool>:deny:<n>, or <tool>:default for a destination no rule allows). Details in the violations log.",
            &["tool", "dest", "rule"],
        )?;
        let policy_enforced = gauge_vec(
            "agentmon_policy_enforced",
            "1 when the tool's policy has enforce = true and the kernel refuses its denied connects; 0 when enforcement was asked for but is not in effect (see the log).",
            &["tool"],
        )?;
        // The daemon's own CPU, memory and file descriptors (process_*).
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            registry,
            egress_bytes,
            ingress_bytes,
            connections,
            dest_overflow,
            dest_network_overflow,
            dns_answers,
            tls_plaintext_bytes,
            http_requests,
            http_request_bytes,
            tls_coverage,
            uprobes_attached,
            agent_processes,
            events_lost,
            events_undecoded,
            tls_untied_bytes,
            tls_unseen_connections,
            tls_framing_lost,
            kernel_map_full,
            kernel_map_evictions,
            log_records_dropped,
            packets_unparsed,
            programs_attached,
            kernel_features,
            kernel_map_entries,
            kernel_map_capacity,
            build_info,
            geoip_built,
            policy_violations,
            policy_enforced,
            last_seen: Mutex::default(),
        })
    }

    /// Text exposition of every metric.
    pub fn encode(&self) -> prometheus::Result<String> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// The counters a restart continues from (see `saved.rs`). Histograms
    /// cannot be set, so the request-size histogram starts afresh.
    fn restorable(&self) -> (Vec<&IntCounterVec>, Vec<&IntCounter>) {
        let vecs = vec![
            &self.egress_bytes,
            &self.ingress_bytes,
            &self.connections,
            &self.dest_overflow,
            &self.dest_network_overflow,
            &self.dns_answers,
            &self.tls_plaintext_bytes,
            &self.http_requests,
            &self.tls_unseen_connections,
            &self.tls_framing_lost,
            &self.kernel_map_full,
            &self.kernel_map_evictions,
            &self.policy_violations,
        ];
        let single = vec![
            &self.events_lost,
            &self.events_undecoded,
            &self.tls_untied_bytes,
            &self.packets_unparsed,
        ];
        (vecs, single)
    }

    /// Every counter series and its value.
    pub fn snapshot(&self) -> Vec<Series> {
        let mut out = Vec::new();
        for family in self.registry.gather() {
            // process_cpu_seconds_total is the process's own, not a count
            // to continue.
            if family.get_field_type() != prometheus::proto::MetricType::COUNTER
                || family.name().starts_with("process_")
            {
                continue;
            }
            for metric in family.get_metric() {
                out.push(Series {
                    name: family.name().to_owned(),
                    labels: metric
                        .get_label()
                        .iter()
                        .map(|l| (l.name().to_owned(), l.value().to_owned()))
                        .collect(),
                    value: metric.get_counter().get_value() as u64,
                });
            }
        }
        out
    }

    /// Sets counters to the values a previous run exported; returns how
    /// many series it restored. Called once, before anything is counted.
    pub fn restore(&self, series: &[Series]) -> usize {
        let (vecs, single) = self.restorable();
        let mut restored = 0;
        for s in series {
            for vec in &vecs {
                if vec.desc()[0].fq_name != s.name {
                    continue;
                }
                let labels: HashMap<&str, &str> = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), renamed(k, v)))
                    .collect();
                if let Ok(counter) = vec.get_metric_with(&labels) {
                    Metrics::raise_to(&counter, s.value);
                    restored += 1;
                }
            }
            for counter in &single {
                if counter.desc()[0].fq_name == s.name && s.labels.is_empty() {
                    Metrics::raise_to(counter, s.value);
                    restored += 1;
                }
            }
        }
        restored
    }

    /// `agentmon_kernel_feature_available`, once at start.
    pub fn set_features(&self, features: &crate::kernel::Features) {
        for feature in crate::kernel::features::ALL {
            self.kernel_features
                .with_label_values(&[feature.label()])
                .set(i64::from(features.has(feature)));
        }
    }

    /// `agentmon_geoip_database_build_timestamp_seconds` of the databases
    /// loaded now.
    pub fn set_geoip(&self, geoip: &crate::geoip::GeoIp) {
        use crate::geoip::Kind;
        for kind in [Kind::Country, Kind::Asn] {
            let database = [kind.key()];
            match geoip.build_epoch(kind) {
                Some(epoch) => self
                    .geoip_built
                    .with_label_values(&database)
                    .set(i64::try_from(epoch).unwrap_or(i64::MAX)),
                None => {
                    let _ = self.geoip_built.remove_label_values(&database);
                }
            }
        }
    }

    /// Raises a counter to a cumulative value read elsewhere (kernel counters).
    pub fn raise_to(counter: &IntCounter, total: u64) {
        let now = counter.get();
        if total > now {
            counter.inc_by(total - now);
        }
    }

    /// Per-tool counters that alerts watch get a series for every catalog
    /// tool from the start, so an increase from nothing is an increase.
    pub fn start_tools(&self, catalog: &Catalog) {
        for id in 0..catalog.len() as ToolId {
            let tool = [catalog.name(id)];
            self.tls_unseen_connections.with_label_values(&tool);
            self.tls_framing_lost.with_label_values(&tool);
            // At 0 from the start, so the cap panel and alerts see them.
            self.dest_overflow.with_label_values(&tool);
            self.dest_network_overflow.with_label_values(&tool);
        }
    }

    /// Sets the per-tool process gauge; every catalog tool gets a series.
    pub fn set_processes(&self, catalog: &Catalog, counts: &HashMap<ToolId, usize>) {
        for id in 0..catalog.len() as ToolId {
            let n = counts.get(&id).copied().unwrap_or(0);
            self.agent_processes
                .with_label_values(&[catalog.name(id)])
                .set(n as i64);
        }
    }

    /// The increments sink for [`crate::traffic::Traffic`].
    pub fn counters<'a>(&'a self, catalog: &'a Catalog) -> NamedCounters<'a> {
        NamedCounters {
            metrics: self,
            catalog,
            now_ms: crate::clock::unix_ms(SystemTime::now()),
        }
    }

    /// When bytes last moved, per (tool, `dest`).
    pub fn last_seen(&self) -> HashMap<(String, String), u64> {
        let seen = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter()
            .flat_map(|(tool, dests)| {
                dests
                    .iter()
                    .map(move |(dest, ms)| ((tool.clone(), dest.clone()), *ms))
            })
            .collect()
    }

    fn saw(&self, tool: &str, dest: &str, now_ms: u64) {
        let mut seen = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
        // Lookups by &str: a key is allocated once per new destination.
        match seen.get_mut(tool) {
            Some(dests) => match dests.get_mut(dest) {
                Some(ms) => *ms = now_ms,
                None => {
                    dests.insert(dest.to_owned(), now_ms);
                }
            },
            None => {
                seen.insert(tool.to_owned(), HashMap::from([(dest.to_owned(), now_ms)]));
            }
        }
    }
}

/// Metrics paired with the catalog that names tool ids.
pub struct NamedCounters<'a> {
    metrics: &'a Metrics,
    catalog: &'a Catalog,
    now_ms: u64,
}

impl Counters for NamedCounters<'_> {
    fn bytes(&mut self, tool: ToolId, proto: Proto, dest: &Dest, sent: u64, received: u64) {
        let labels = [
            self.catalog.name(tool),
            proto.label(),
            &dest.name,
            &dest.country,
            &dest.asn,
            dest.purpose,
        ];
        if sent > 0 || received > 0 {
            self.metrics.saw(labels[0], &dest.name, self.now_ms);
        }
        if sent > 0 {
            self.metrics
                .egress_bytes
                .with_label_values(&labels)
                .inc_by(sent);
        }
        if received > 0 {
            self.metrics
                .ingress_bytes
                .with_label_values(&labels)
                .inc_by(received);
        }
    }

    fn tls_bytes(&mut self, tool: ToolId, dest: &Dest, lib: TlsLib, sent: u64, received: u64) {
        let (tool, lib) = (self.catalog.name(tool), lib.label());
        if sent > 0 {
            self.metrics
                .tls_plaintext_bytes
                .with_label_values(&[tool, &dest.name, "egress", lib])
                .inc_by(sent);
        }
        if received > 0 {
            self.metrics
                .tls_plaintext_bytes
                .with_label_values(&[tool, &dest.name, "ingress", lib])
                .inc_by(received);
        }
    }

    fn http_request(
        &mut self,
        tool: ToolId,
        dest: &Dest,
        method: &'static str,
        purpose: &'static str,
    ) {
        self.metrics
            .http_requests
            .with_label_values(&[self.catalog.name(tool), &dest.name, method, purpose])
            .inc();
    }

    fn request_size(&mut self, tool: ToolId, purpose: &'static str, sent: u64, received: u64) {
        let tool = self.catalog.name(tool);
        for (direction, bytes) in [("egress", sent), ("ingress", received)] {
            self.metrics
                .http_request_bytes
                .with_label_values(&[tool, purpose, direction])
                .observe(bytes as f64);
        }
    }

    fn connection(&mut self, tool: ToolId, proto: Proto, direction: Direction, dest: &Dest) {
        self.metrics
            .connections
            .with_label_values(&[
                self.catalog.name(tool),
                proto.label(),
                direction.label(),
                &dest.name,
                &dest.country,
                &dest.asn,
                dest.purpose,
            ])
            .inc();
    }
}

/// A label value as this version spells it, for counters saved by an
/// earlier one: connections' `direction` was `outbound`/`inbound` before
/// it took the byte counters' `egress`/`ingress`.
fn renamed<'a>(key: &str, value: &'a str) -> &'a str {
    match (key, value) {
        ("direction", "outbound") => "egress",
        ("direction", "inbound") => "ingress",
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saved::Series;

    #[test]
    fn counters_saved_with_the_old_direction_names_continue_under_the_new() {
        let metrics = Metrics::new().unwrap();
        let labels = |direction: &str| {
            [
                ("tool", "codex"),
                ("proto", "tcp"),
                ("direction", direction),
                ("dest", "api.openai.com"),
                ("dest_country", "anycast"),
                ("dest_asn", "AS13335"),
                ("purpose", "model-api"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into()
        };
        let saved = [("outbound", 5), ("inbound", 2)].map(|(d, value)| Series {
            name: "agentmon_connections_total".into(),
            labels: labels(d),
            value,
        });
        assert_eq!(metrics.restore(&saved), 2);
        let now: Vec<_> = metrics
            .snapshot()
            .into_iter()
            .filter(|s| s.name == "agentmon_connections_total")
            .map(|s| (s.labels["direction"].clone(), s.value))
            .collect();
        assert_eq!(now, [("egress".into(), 5), ("ingress".into(), 2)]);
    }
}
