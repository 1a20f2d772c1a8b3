//! Secrets never leave the agent through agentmon: a request carrying an
//! Authorization header, an API key header, a cookie, a key in the query
//! string and a secret in the body goes through a probed TLS library (the
//! probes see its plaintext), with paths logged on; none of those values
//! is in agentmon's log, its connection log or its exposition, while the
//! request itself is seen and sized.

use std::{fs, path::Path, time::Duration};

use agentmon_tests::{require_root, wait_until, world};

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
/// Each would be a leak if it appeared anywhere agentmon writes.
const SECRETS: [&str; 5] = [
    "sk-ant-api03-SECRETBEARER0123456789",
    "sk-proj-SECRETAPIKEY9876543210",
    "SECRETCOOKIE4242",
    "SECRETQUERYKEY1313",
    "SECRETBODYTEXT7777",
];

#[test]
fn no_header_cookie_query_or_body_secret_reaches_any_output() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "[log]\npaths = true\n");
    let curl = w.as_claude(Path::new("/usr/bin/curl"));
    let body = w.lab.dir().join("body");
    fs::write(&body, format!("{{\"prompt\": \"{}\"}}", SECRETS[4])).unwrap();
    let config = format!(
        "url = \"https://api.model.test/v1/messages?key={query}\"\nipv4\ninsecure\nsilent\n\
         header = \"Expect:\"\nheader = \"Authorization: Bearer {bearer}\"\n\
         header = \"x-api-key: {key}\"\nheader = \"Cookie: session={cookie}\"\n\
         data-binary = \"@{body}\"\n",
        bearer = SECRETS[0],
        key = SECRETS[1],
        cookie = SECRETS[2],
        query = SECRETS[3],
        body = body.display()
    );
    w.curl_probed(&curl, &config);

    // The request was seen through the probe, with its path, not its query.
    let request = [
        ("tool", "claude-code"),
        ("dest", "api.model.test"),
        ("method", "POST"),
    ];
    let m = w.expect("agentmon_http_requests_total", &request, 1.0);
    assert!(wait_until(Duration::from_secs(15), || !w
        .tcp_log_lines()
        .is_empty()));
    let line = w.tcp_log_lines().remove(0);
    assert_eq!(line["requests"][0]["path"], "/v1/messages", "{line}");

    let outputs = [
        ("agentmon's log", w.am.log_text()),
        ("the connection log", fs::read_to_string(&w.log).unwrap()),
        ("/metrics", m.text().to_owned()),
    ];
    for (name, text) in &outputs {
        assert!(!text.is_empty(), "{name} is empty");
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} in {name}:\n{text}");
        }
        for header in ["Authorization", "x-api-key", "Cookie", "Bearer"] {
            assert!(!text.contains(header), "{header} in {name}:\n{text}");
        }
    }
}
