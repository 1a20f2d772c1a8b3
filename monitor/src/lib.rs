//! agentmon: shows where AI coding agents send data.
//!
//! The stages of the data's path, one module each: `kernel` (loading the
//! eBPF programs, the only module that touches aya), `events` (decoding what
//! they send), `agents` (recognising agent processes), `tree` (their process
//! trees), `uprobes` (which TLS libraries to probe, and where), `dest`,
//! `geoip` and `enrich` (naming destinations), `traffic` (aggregation),
//! `requests` (sizes per HTTP request), `metrics`, `exporter` and `web`
//! (Prometheus, served with TLS and authentication when configured), `connlog` (JSON Lines log) with `clock` (its wall-clock
//! times), `logging` (agentmon's own log on stderr), and `daemon`, which
//! routes events between them. `config` assembles the config file and builds
//! the catalogs; `caps` and `doctor` say whether agentmon can run here.
//! ARCHITECTURE.md at the root draws the whole path.

pub mod agents;
pub mod caps;
pub mod clock;
pub mod config;
pub mod connlog;
pub mod daemon;
pub mod dest;
pub mod doctor;
pub mod enrich;
pub mod events;
pub mod exit;
pub mod exporter;
pub mod geoip;
pub mod kernel;
pub mod logging;
pub mod lookup;
pub mod metrics;
pub mod origin;
pub mod policy;
pub mod procfs;
pub mod release;
pub mod report;
pub mod requests;
pub mod run;
pub mod saved;
pub mod service;
pub mod top;
pub mod traffic;
pub mod tree;
pub mod uprobes;
pub mod web;
