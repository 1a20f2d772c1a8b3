//! SIGHUP reloads the config and its catalogs without losing counters or
//! open connections; a config that does not load leaves the running one in
//! place and the log says why, at its line and column.

use std::{fs, path::Path, time::Duration};

use agentmon_tests::{
    Agentmon, NetLab, PeerCounts, REMOTE_TCP_V4, agent_copy, require_root, run_bounded, wait_until,
};

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
const REPLY: u64 = 4321;

const ONE_TOOL: &str =
    "[[agents.tool]]\nname = \"my-agent\"\nrules = [{ exe = \"**/bin/my-agent\" }]\n";
const TWO_TOOLS: &str = "[[agents.tool]]\nname = \"my-agent\"\nrules = [{ exe = \"**/bin/my-agent\" }]\n\
    [[agents.tool]]\nname = \"other-agent\"\nrules = [{ exe = \"**/bin/other-agent\" }]\n";

fn send(lab: &NetLab, program: &Path, bytes: u64) {
    let args = [
        "tcp".to_owned(),
        "--to".into(),
        REMOTE_TCP_V4.to_string(),
        "--send".into(),
        bytes.to_string(),
        "--expect".into(),
        REPLY.to_string(),
    ];
    let out = run_bounded(&mut lab.client_cmd(program, args), Duration::from_secs(60));
    assert_eq!(PeerCounts::from_output(&out).sent, bytes);
}

#[test]
fn sighup_takes_a_good_config_keeps_counting_and_refuses_a_bad_one() {
    if !require_root() {
        return;
    }
    let lab = NetLab::new();
    let _servers = lab.spawn_servers(Path::new(NETPEER), REPLY as usize);
    let (mine, other) = (
        lab.dir().join("bin/my-agent"),
        lab.dir().join("bin/other-agent"),
    );
    agent_copy(Path::new(NETPEER), &mine);
    agent_copy(Path::new(NETPEER), &other);
    let config = lab.dir().join("agentmon.toml");
    fs::write(&config, ONE_TOOL).unwrap();
    let am = Agentmon::builder().config(&config).start();

    send(&lab, &mine, 10_000);
    let mine_tcp = [("tool", "my-agent"), ("proto", "tcp")];
    am.expect("agentmon_egress_bytes_total", &mine_tcp, 10_000.0);
    // Not a tool yet: counts for nobody.
    send(&lab, &other, 20_000);
    assert!(
        am.scrape()
            .value("agentmon_egress_bytes_total", &[("tool", "other-agent")])
            .is_none()
    );

    // A good config: the new tool is recognised, the old counts stay.
    fs::write(&config, TWO_TOOLS).unwrap();
    am.hangup();
    am.expect("agentmon_agent_processes", &[("tool", "other-agent")], 0.0);
    send(&lab, &other, 30_000);
    let other_tcp = [("tool", "other-agent"), ("proto", "tcp")];
    am.expect("agentmon_egress_bytes_total", &other_tcp, 30_000.0);
    am.expect("agentmon_egress_bytes_total", &mine_tcp, 10_000.0);

    // A bad config: refused with its place, the running one stays.
    fs::write(&config, format!("{TWO_TOOLS}[log]\nkeep = 0\n")).unwrap();
    am.hangup();
    let want = format!(
        "config not reloaded, keeping the running one: {}:",
        config.display()
    );
    assert!(
        wait_until(Duration::from_secs(10), || am.log_text().contains(&want)),
        "no refusal in the log:\n{}",
        am.log_text()
    );
    let line = am
        .log_text()
        .lines()
        .find(|l| l.contains(&want))
        .unwrap()
        .to_owned();
    assert!(line.contains("keep"), "{line}");
    send(&lab, &other, 5_000);
    am.expect("agentmon_egress_bytes_total", &other_tcp, 35_000.0);
    am.expect("agentmon_egress_bytes_total", &mine_tcp, 10_000.0);
}
