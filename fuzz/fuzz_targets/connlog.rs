//! The connection log's writer: names and metadata that agents and remote
//! servers choose (SNI, Host, DNS names, the argv0 a process gives itself)
//! must stay one JSON line each, with the same text read back, so that no
//! value can end a record early or add a key to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::connlog::{Event, Process, Record, SCHEMA_VERSION, line};
use serde_json::Value;

type Fields = (String, String, String, String, String, String, String);

fn record(fields: &Fields) -> Record<'_> {
    let (tool, exe, argv0, host, sni, dns_name, dest) = fields;
    Record {
        v: SCHEMA_VERSION,
        event: Event::Close,
        id: "tcp:1".into(),
        time: "2026-12-02T00:00:00Z".into(),
        tool,
        process: Process {
            pid: 1,
            ppid: 0,
            uid: Some(1000),
            user: Some(argv0),
            exe,
            argv0,
            root_pid: 1,
        },
        proto: "tcp",
        direction: "egress",
        remote_addr: "192.0.2.1".into(),
        remote_port: 443,
        local_addr: None,
        local_port: None,
        egress_bytes: 1,
        ingress_bytes: 2,
        egress_datagrams: None,
        ingress_datagrams: None,
        host: Some(host),
        sni: Some(sni),
        alpn: None,
        http_host: Some(host),
        http_method: Some("GET"),
        dns_name: Some(dns_name),
        dest,
        dest_country: dest,
        dest_asn: tool,
        dest_asn_org: Some(exe),
        purpose: "inference",
        tls_library: None,
        egress_plaintext_bytes: None,
        ingress_plaintext_bytes: None,
        requests: &[],
        requests_dropped: 0,
        start: "2026-12-02T00:00:00Z".into(),
        end: None,
    }
}

fn keys(line: &[u8]) -> Vec<String> {
    let read: Value = serde_json::from_slice(line).expect("the line is JSON");
    read.as_object().expect("an object").keys().cloned().collect()
}

fuzz_target!(|fields: Fields| {
    let (tool, exe, argv0, host, sni, dns_name, dest) = &fields;
    let bytes = line(&record(&fields)).expect("a record always serializes");
    let (last, body) = bytes.split_last().expect("never empty");
    assert_eq!(*last, b'\n');
    // JSON Lines readers split at \n (and some at \r): neither, nor any
    // other control byte, may appear inside the record.
    assert!(body.iter().all(|b| *b >= 0x20), "a control byte inside a record");
    let read: Value = serde_json::from_slice(body).expect("the line is JSON");
    let object = read.as_object().expect("an object");
    let text = |key: &str| object[key].as_str().map(str::to_owned);
    assert_eq!(text("tool").as_deref(), Some(tool.as_str()));
    assert_eq!(text("exe").as_deref(), Some(exe.as_str()));
    assert_eq!(text("argv0").as_deref(), Some(argv0.as_str()));
    assert_eq!(text("host").as_deref(), Some(host.as_str()));
    assert_eq!(text("sni").as_deref(), Some(sni.as_str()));
    assert_eq!(text("dns_name").as_deref(), Some(dns_name.as_str()));
    assert_eq!(text("dest").as_deref(), Some(dest.as_str()));
    // The fixed fields keep their values: nothing was injected over them.
    assert_eq!(text("remote_addr").as_deref(), Some("192.0.2.1"));
    assert_eq!(object["egress_bytes"].as_u64(), Some(1));
    let x = || "x".to_string();
    let plain = (x(), x(), x(), x(), x(), x(), x());
    assert_eq!(keys(body), keys(&line(&record(&plain)).unwrap()));
});
