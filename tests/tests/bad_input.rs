//! Start-up problems end agentmon with a non-zero exit and one line that says
//! what is wrong and what to do.

use std::{fs, net::TcpListener, process::Command, time::Duration};

use agentmon_tests::{TempDir, agentmon_bin, run_bounded};

const RUN: Duration = Duration::from_secs(30);

/// Runs agentmon, expects it to exit with `code`, returns its one-line error.
fn fails_with(code: i32, cmd: &mut Command) -> String {
    let out = run_bounded(cmd, RUN);
    assert_eq!(out.status.code(), Some(code), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "want one error line, got:\n{stderr}");
    errors[0].to_owned()
}

/// A failure retrying may cure (exit 1).
fn fails(cmd: &mut Command) -> String {
    fails_with(1, cmd)
}

/// A bad config: exit 78 (EX_CONFIG), which the unit does not restart.
fn fails_config(cmd: &mut Command) -> String {
    fails_with(78, cmd)
}

#[test]
fn config_error_names_file_line_and_column() {
    let tmp = TempDir::new("badconfig");
    let path = tmp.path().join("agentmon.toml");
    fs::write(
        &path,
        "listen = \"127.0.0.1:9977\"\n\n[agents]\ndisabel = [\"cursor\"]\n",
    )
    .unwrap();
    let line = fails_config(
        Command::new(agentmon_bin())
            .args(["run", "--config"])
            .arg(&path),
    );
    let want = format!("{}:4:1:", path.display());
    assert!(line.contains(&want), "{line}");
    assert!(line.contains("disabel"), "{line}");
}

#[test]
fn taken_port_is_reported_with_the_fix() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let line = fails(Command::new(agentmon_bin()).args(["run", "--listen", &addr]));
    assert!(line.contains(&format!("cannot listen on {addr}")), "{line}");
    assert!(line.contains("--listen"), "{line}");
}

#[test]
fn no_capabilities_are_reported_with_the_fix() {
    // As root, drop to nobody for this one run.
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(agentmon_bin());
        c
    } else {
        Command::new(agentmon_bin())
    };
    // 77 (EX_NOPERM): the unit does not restart it either.
    let line = fails_with(77, cmd.args(["run", "--listen", "127.0.0.1:0"]));
    assert!(line.contains("missing CAP_BPF (to "), "{line}");
    assert!(line.contains("run it as root"), "{line}");
}

#[test]
fn check_config_accepts_a_good_file_and_lists_tools() {
    let tmp = TempDir::new("goodconfig");
    let path = tmp.path().join("agentmon.toml");
    fs::write(
        &path,
        "[agents]\ndisable = [\"cursor\"]\n[[agents.tool]]\nname = \"my-agent\"\nrules = [{ exe = \"**/bin/my-agent\" }]\n",
    )
    .unwrap();
    let out = run_bounded(
        Command::new(agentmon_bin()).arg("check-config").arg(&path),
        RUN,
    );
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("my-agent") && stdout.contains("claude-code"),
        "{stdout}"
    );
    assert!(!stdout.contains("cursor"), "{stdout}");
}

#[test]
fn config_errors_exit_with_78_so_systemd_stops_restarting() {
    let tmp = TempDir::new("exit78");
    let path = tmp.path().join("agentmon.toml");
    fs::write(&path, "[log]\nconnections = \"\"\n").unwrap();
    for args in [&["run", "--config"][..], &["check-config"][..]] {
        let out = run_bounded(Command::new(agentmon_bin()).args(args).arg(&path), RUN);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "{}:2:15: log.connections is empty",
                path.display()
            )),
            "{stderr}"
        );
    }
}
