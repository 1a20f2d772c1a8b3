//! An agent's short-lived helpers get their TLS seen from their very first
//! request: one-shot curl, python and node clients run by an agent's shell,
//! against a server that answers the handshake after 50 ms as a remote API
//! would (`HANDSHAKE_DELAY_MS`). Nothing waits for agentmon: each probe must be in place before the
//! process's first `SSL_write`, which comes after its connect and the
//! handshake. Expected sizes come from the web server's own plaintext counts.

use std::{fs, path::Path};

use agentmon_tests::{Internet, require_root, world};

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");

#[test]
fn one_shot_clients_of_an_agents_shell_get_their_first_request_counted() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    let claude = w.as_claude(Path::new(NETPEER));
    let body = w.lab.dir().join("body");
    fs::write(&body, vec![b'q'; 4444]).unwrap();
    let script = format!(
        "set -e
curl -sk --ipv4 -H 'Expect:' --data-binary @{body} -o /dev/null https://api.model.test/v1/messages
python3 {py} --name api.model.test --tls --port 443 --path /v1/messages --body 3333
node {node} api.model.test 443 /v1/messages 2222",
        body = body.display(),
        py = Internet::script("py_client.py").display(),
        node = Internet::script("node_client.js").display(),
    );
    w.agent_shell(&claude, &script);
    let conns = w.server_conns("203.0.113.20:443", 3);
    // node's is the one whose request carried its 2222-byte body.
    let (node, libssl): (Vec<_>, Vec<_>) = conns
        .iter()
        .partition(|c| c.requests.first().is_some_and(|r| r.0 > 2222 && r.0 < 3333));
    assert_eq!((node.len(), libssl.len()), (1, 2), "{conns:?}");
    let total = |cs: &[&agentmon_tests::ServerConn]| {
        (
            cs.iter().map(|c| c.plain_in).sum::<u64>() as f64,
            cs.iter().map(|c| c.plain_out).sum::<u64>() as f64,
        )
    };
    for (lib, (sent, received)) in [
        ("openssl", total(&libssl)),
        ("openssl-static", total(&node)),
    ] {
        let labels = |direction| {
            [
                ("tool", "claude-code"),
                ("dest", "api.model.test"),
                ("direction", direction),
                ("library", lib),
            ]
        };
        w.expect(
            "agentmon_tls_plaintext_bytes_total",
            &labels("egress"),
            sent,
        );
        w.expect(
            "agentmon_tls_plaintext_bytes_total",
            &labels("ingress"),
            received,
        );
    }
    let posts = [
        ("tool", "claude-code"),
        ("dest", "api.model.test"),
        ("method", "POST"),
        ("purpose", "model-api"),
    ];
    let m = w.expect("agentmon_http_requests_total", &posts, 3.0);
    assert_eq!(m.value("agentmon_tls_untied_bytes_total", &[]), Some(0.0));
    assert_eq!(
        m.value(
            "agentmon_tls_connections_unseen_total",
            &[("tool", "claude-code")]
        ),
        Some(0.0),
        "every connection was seen in plaintext"
    );
    // Probes saw every connection: no figure is derived from records.
    let libraries = m.label_values("agentmon_tls_plaintext_bytes_total", "library");
    assert!(!libraries.contains("record"), "{libraries:?}");
}
