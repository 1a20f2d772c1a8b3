//! Real agents, from their published npm packages (`tests/agents/packages.txt`),
//! installed the ways users install them, are named by agentmon. `cargo
//! xtask setup test` installs them (xtask/src/setup/agents.rs) as npm does:
//! globally under nvm's prefix, with a node from npm's `node` package; into a
//! project, run from `node_modules/.bin` and through `npx`; and into Volta's
//! package images, run as Volta's shim runs them; and the binaries at the
//! places the vendors' own installers put them (`tests/agents/installers.txt`).
//! Each runs `--version` in
//! the lab's client namespace, which reaches only the test internet (its DNS
//! knows no real name), while agentmon runs.
//!
//! agentmon's verdict on a process is its "tracking agent process" log line.
//! Runs go one after another, so the processes of a run are those with pids
//! from its first up to the next run's: each run must have at least one
//! tracked process, and every tracked one must be that agent.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use agentmon_tests::{
    AGENTS_HOME, Agentmon, ChildGuard, Internet, NetLab, TempDir, agent_env, default_records,
    installed_agent, require_root, wait_until,
};

/// The nvm-shaped prefix's and Volta's node (xtask/src/setup/agents.rs).
const NODE_VERSION: &str = "22.23.3";
const RUN: Duration = Duration::from_secs(90);
const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// One line of tests/agents/packages.txt.
struct Package {
    name: String,
    bin: String,
    tool: String,
}

fn packages() -> Vec<Package> {
    let list = include_str!("../agents/packages.txt");
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(w.len(), 4, "packages.txt: {l}");
            Package {
                name: w[0].into(),
                bin: w[2].into(),
                tool: w[3].into(),
            }
        })
        .collect()
}

/// A way to start an agent: its command, PATH and working folder.
struct Layout {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    path: String,
    cwd: PathBuf,
}

fn layouts(home: &Path, p: &Package) -> Vec<Layout> {
    let nvm = home.join(format!(".nvm/versions/node/v{NODE_VERSION}/bin"));
    let project = home.join("project");
    let volta = home.join(".volta/tools/image");
    let version = vec!["--version".to_string()];
    vec![
        Layout {
            name: "npm global under nvm",
            program: nvm.join(&p.bin),
            args: version.clone(),
            path: format!("{}:{SYSTEM_PATH}", nvm.display()),
            cwd: home.to_path_buf(),
        },
        Layout {
            name: "npm local (node_modules/.bin)",
            program: project.join("node_modules/.bin").join(&p.bin),
            args: version.clone(),
            path: SYSTEM_PATH.into(),
            cwd: project.clone(),
        },
        Layout {
            name: "npx",
            program: "npx".into(),
            args: vec!["--no-install".into(), p.bin.clone(), "--version".into()],
            path: SYSTEM_PATH.into(),
            cwd: project,
        },
        // Volta's shim runs <image>/packages/<package>/bin/<bin> with its
        // node image first on PATH (volta-core run/binary.rs).
        Layout {
            name: "Volta",
            program: volta
                .join("packages")
                .join(&p.name)
                .join("bin")
                .join(&p.bin),
            args: version,
            path: format!(
                "{}:{SYSTEM_PATH}",
                volta.join(format!("node/{NODE_VERSION}/bin")).display()
            ),
            cwd: home.to_path_buf(),
        },
    ]
}

/// The vendors' installers' layouts: (tool, the command under home).
fn installers() -> Vec<(String, String)> {
    let list = include_str!("../agents/installers.txt");
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(w.len(), 4, "installers.txt: {l}");
            let run = if w[3] == "-" { w[2] } else { w[3] };
            (w[0].to_string(), run.to_string())
        })
        .collect()
}

/// A "tracking agent process" line: pid, tool, exe.
fn tracked(log: &str) -> Vec<(u32, String, String)> {
    log.lines()
        .filter_map(|line| {
            let rest = line.split_once("tracking agent process ")?.1;
            let pid = rest.strip_prefix("pid=")?.split(' ').next()?.parse().ok()?;
            let tool = rest.split_once("tool=\"")?.1.split('"').next()?.to_string();
            let exe = rest.split_once(" exe=").map_or("", |(_, e)| e).to_string();
            Some((pid, tool, exe))
        })
        .collect()
}

#[test]
fn published_agents_are_named_in_every_install_layout() {
    if !require_root() || installed_agent("project/node_modules").is_none() {
        return;
    }
    let lab = NetLab::new();
    let _internet = Internet::start(&lab, &default_records());
    let am = Agentmon::start();
    // The agents write their settings and caches under $HOME.
    let user = TempDir::new("agent-home");
    let mut runs: Vec<(String, String, u32)> = Vec::new();
    let mut outputs = Vec::new();
    let home = Path::new(AGENTS_HOME);
    let vendors = installers().into_iter().map(|(tool, run)| {
        let layout = Layout {
            name: "the vendor's installer",
            program: home.join(&run),
            args: vec!["--version".into()],
            path: SYSTEM_PATH.into(),
            cwd: home.to_path_buf(),
        };
        (run, tool, layout)
    });
    let npm = packages().into_iter().flat_map(|p| {
        layouts(home, &p)
            .into_iter()
            .map(move |layout| (p.name.clone(), p.tool.clone(), layout))
    });
    for (what, tool, layout) in npm.chain(vendors) {
        let mut cmd: Command = lab.client_cmd(&layout.program, &layout.args);
        cmd.current_dir(&layout.cwd);
        agent_env(&mut cmd, user.path(), &layout.path);
        let child = ChildGuard::spawn(&mut cmd);
        let pid = child.id();
        let out = child.wait_output(RUN);
        let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        let head: Vec<&str> = text.lines().take(3).collect();
        runs.push((format!("{what} ({})", layout.name), tool, pid));
        outputs.push(head.join(" | "));
    }
    // Every run's first process is tracked within a while, or never.
    let firsts: Vec<u32> = runs.iter().map(|r| r.2).collect();
    wait_until(Duration::from_secs(30), || {
        let seen: BTreeSet<u32> = tracked(&am.log_text()).iter().map(|t| t.0).collect();
        firsts.iter().all(|pid| seen.contains(pid))
    });
    let lines = tracked(&am.log_text());
    let mut wrong = Vec::new();
    for (i, (what, want, first)) in runs.iter().enumerate() {
        let end = runs.get(i + 1).map_or(u32::MAX, |r| r.2);
        let mine: Vec<&(u32, String, String)> = lines
            .iter()
            .filter(|(pid, _, _)| (*first..end).contains(pid))
            .collect();
        let tools: BTreeSet<&str> = mine.iter().map(|t| t.1.as_str()).collect();
        if tools != BTreeSet::from([want.as_str()]) {
            wrong.push(format!(
                "{what}: want {want}, tracked {mine:?}; its output: {}",
                outputs[i]
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} runs not named right:\n{}",
        wrong.len(),
        runs.len(),
        wrong.join("\n")
    );
}

#[test]
fn the_package_list_names_each_agent_once() {
    let list = packages();
    let tools: BTreeSet<&str> = list.iter().map(|p| p.tool.as_str()).collect();
    assert_eq!(tools.len(), list.len());
}

/// Runs `file` as `/usr/local/bin/copilot` with `args`, in the client
/// namespace and a mount namespace of its own (a bind mount puts it there;
/// the host's /usr/local/bin is left alone). One process: `ip netns exec`,
/// `unshare` and `sh` each exec the next.
fn as_usr_local_bin_copilot(lab: &NetLab, file: &Path, args: &[&str], home: &Path) -> Command {
    let script = "mount -t tmpfs tmpfs /usr/local/bin && : > /usr/local/bin/copilot \
                  && mount --bind \"$0\" /usr/local/bin/copilot \
                  && exec /usr/local/bin/copilot \"$@\"";
    let mut cmd = lab.client_cmd("unshare", ["--mount", "--propagation", "private"]);
    cmd.args(["sh", "-c", script]).arg(file).args(args);
    agent_env(&mut cmd, home, SYSTEM_PATH);
    cmd
}

/// GitHub's install script run as root puts Copilot CLI at
/// /usr/local/bin/copilot, where AWS's documentation puts AWS Copilot CLI,
/// a Go program. agentmon names GitHub's (a Node single executable) and
/// not a Go program at that path.
#[test]
fn copilot_at_usr_local_bin_is_named_only_when_it_is_githubs() {
    if !require_root() {
        return;
    }
    let Some(github) = installed_agent(".local/bin/copilot") else {
        return;
    };
    let lab = NetLab::new();
    let _internet = Internet::start(&lab, &default_records());
    let aws = Internet::go_client(&lab.dir().join("aws-copilot"));
    let am = Agentmon::start();
    let user = TempDir::new("agent-home");
    // The Go program waits for a file that is made only once GitHub's,
    // started after it, has been judged: agentmon judges execs in order,
    // so it judged the Go program while it ran.
    let go_on = lab.dir().join("go-on");
    let go_on_arg = go_on.display().to_string();
    let go_args = ["-wait", go_on_arg.as_str(), "model.test", "443", "/v1:1"];
    let aws_run = ChildGuard::spawn(&mut as_usr_local_bin_copilot(
        &lab,
        &aws,
        &go_args,
        user.path(),
    ));
    let github_run = ChildGuard::spawn(&mut as_usr_local_bin_copilot(
        &lab,
        &github,
        &["--version"],
        user.path(),
    ));
    let (aws_pid, github_pid) = (aws_run.id(), github_run.id());
    let out = github_run.wait_output(RUN);
    wait_until(Duration::from_secs(30), || {
        tracked(&am.log_text()).iter().any(|t| t.0 == github_pid)
    });
    std::fs::write(&go_on, "").unwrap();
    drop(aws_run);
    let lines = tracked(&am.log_text());
    let github_lines: Vec<_> = lines.iter().filter(|t| t.0 == github_pid).collect();
    assert_eq!(
        github_lines,
        [&(
            github_pid,
            "copilot".to_string(),
            "/usr/local/bin/copilot".to_string()
        )],
        "GitHub's Copilot CLI at /usr/local/bin; its output: {}",
        String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr)
    );
    let aws_lines: Vec<_> = lines
        .iter()
        .filter(|t| (aws_pid..github_pid).contains(&t.0))
        .collect();
    assert!(
        aws_lines.is_empty(),
        "a Go program at /usr/local/bin/copilot was named: {aws_lines:?}"
    );
}
