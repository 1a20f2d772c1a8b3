//! What ships to fleet machines, checked by the real tools: the systemd unit
//! by `systemd-analyze verify` and `security`, the shipped config by
//! `agentmon check-config`, and the Debian package by installing it with
//! `dpkg -i`, removing it with `dpkg -r` and purging it with `dpkg --purge`
//! on this machine.

use std::{
    env, fs,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use agentmon_tests::{TempDir, agentmon_bin, in_ci, require_root, run_bounded};

const RUN: Duration = Duration::from_secs(120);
/// The capabilities of the unit's ambient and bounding sets (README
/// "Least privilege"); CAP_SYS_ADMIN for the TLS uprobes, which this
/// kernel creates only for it.
const CAPABILITIES: &str = "CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_SYS_PTRACE CAP_DAC_READ_SEARCH CAP_SYS_RESOURCE CAP_SYS_ADMIN";

fn packaging() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging")
}

/// Runs `cmd`; panics with its output unless it exits 0.
fn ok(cmd: &mut Command) -> Output {
    let out = run_bounded(cmd, RUN);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The value of `key=` in the unit (its one line).
fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    let mut values = unit.lines().filter_map(|l| l.strip_prefix(&prefix));
    let value = values
        .next()
        .unwrap_or_else(|| panic!("no {key}= in the unit"));
    assert!(values.next().is_none(), "{key}= twice in the unit");
    value
}

/// The unit as shipped but starting the agentmon under test: `verify` checks
/// that ExecStart's binary exists, and this one has not been installed.
fn unit_for_verify(dir: &Path) -> PathBuf {
    let unit = fs::read_to_string(packaging().join("agentmon.service")).unwrap();
    let exec = "ExecStart=/usr/bin/agentmon ";
    assert_eq!(unit.matches(exec).count(), 1, "{exec} in the unit");
    let bin = format!("ExecStart={} ", agentmon_bin().display());
    let path = dir.join("agentmon.service");
    fs::write(&path, unit.replace(exec, &bin)).unwrap();
    path
}

/// `systemd-analyze ARGS UNIT` (Debian's systemd package; `cargo xtask
/// setup test` installs it), whatever its exit status.
fn systemd_analyze(args: &[&str], unit: &Path) -> Output {
    run_bounded(Command::new("systemd-analyze").args(args).arg(unit), RUN)
}

#[test]
fn unit_passes_systemd_analyze_verify_without_a_warning() {
    let tmp = TempDir::new("unit-verify");
    let unit = unit_for_verify(tmp.path());
    let out = systemd_analyze(&["verify"], &unit);
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "systemd-analyze verify ({}):\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn unit_is_hardened_and_runs_the_decided_command() {
    let unit = fs::read_to_string(packaging().join("agentmon.service")).unwrap();
    assert_eq!(
        unit_value(&unit, "ExecStart"),
        "/usr/bin/agentmon run --config /etc/agentmon/config.toml"
    );
    assert_eq!(unit_value(&unit, "User"), "agentmon");
    assert_eq!(unit_value(&unit, "Type"), "notify");
    assert_eq!(unit_value(&unit, "ExecReload"), "/bin/kill -HUP $MAINPID");
    // A bad config (78) or missing capabilities (77): no crash loop.
    assert_eq!(unit_value(&unit, "RestartPreventExitStatus"), "77 78");
    assert_eq!(unit_value(&unit, "AmbientCapabilities"), CAPABILITIES);
    assert_eq!(unit_value(&unit, "CapabilityBoundingSet"), CAPABILITIES);
    assert_eq!(unit_value(&unit, "ReadWritePaths"), "/sys/fs/bpf/agentmon");
    assert_eq!(unit_value(&unit, "LogsDirectory"), "agentmon");
    // Where `agentmon run` saves its state by default.
    assert_eq!(unit_value(&unit, "StateDirectory"), "agentmon/state");

    // systemd's own score, 0 (locked down) to 10 (unprotected): 2.7 when
    // written. --threshold is in tenths.
    let tmp = TempDir::new("unit-security");
    let path = unit_for_verify(tmp.path());
    let out = systemd_analyze(&["security", "--offline=true", "--threshold=30"], &path);
    let report = text(&out.stdout);
    assert!(
        out.status.success(),
        "exposure above 3.0 ({}):\n{report}{}",
        out.status,
        text(&out.stderr)
    );
    assert!(
        report.contains("Overall exposure level for agentmon.service"),
        "{report}"
    );
}

/// `check-config`'s line for `path`, with the path cut off.
fn check_config(path: &Path) -> String {
    let out = ok(Command::new(agentmon_bin()).arg("check-config").arg(path));
    let line = text(&out.stdout);
    let prefix = format!("{}: ", path.display());
    line.strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("check-config printed {line:?}"))
        .to_owned()
}

#[test]
fn shipped_config_changes_nothing_and_shows_the_defaults() {
    let shipped = packaging().join("config.toml");
    let tmp = TempDir::new("shipped-config");
    let empty = tmp.path().join("empty.toml");
    fs::write(&empty, "").unwrap();
    let defaults = check_config(&empty);
    assert_eq!(check_config(&shipped), defaults);
    // "#key = value" lines are the options with their defaults: uncommented,
    // they still change nothing. ("# text" lines are prose and examples.)
    let options: String = fs::read_to_string(&shipped)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase() || c == '['))
        .map(|l| format!("{l}\n"))
        .collect();
    for key in [
        "listen",
        "[log]",
        "paths",
        "disable",
        "country",
        "asn",
        "reload_seconds",
        "anycast_asns",
        "max_per_tool",
        "max_networks_per_tool",
        "[top]",
        "socket",
        "[kernel]",
        "conns",
        "udp_flows",
        "tls_calls",
        "ssl_socks",
        "tls_pending",
        "go_calls",
        "tls_heads",
        "policy_hosts",
        "rx_socks",
    ] {
        assert!(
            options.contains(key),
            "no #{key} in the shipped config:\n{options}"
        );
    }
    let uncommented = tmp.path().join("uncommented.toml");
    fs::write(&uncommented, &options).unwrap();
    assert_eq!(check_config(&uncommented), defaults, "{options}");
}

/// Whether the package test may install into this machine: under CI, or
/// when AGENTMON_TEST_DEB asks. Returns the package to install.
fn deb_to_install() -> Option<PathBuf> {
    let asked = env::var("AGENTMON_TEST_DEB").is_ok_and(|v| !matches!(v.trim(), "" | "0"));
    if !asked && !in_ci() {
        eprintln!(
            "skipping: installs agentmon's package into this machine; \
             AGENTMON_TEST_DEB=1 cargo xtask test runs it (CI always does)"
        );
        return None;
    }
    if !require_root() {
        return None;
    }
    let deb = env::var_os("AGENTMON_DEB")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .expect("AGENTMON_DEB is not set: `cargo xtask test` builds the package and sets it");
    assert!(
        deb.is_file(),
        "AGENTMON_DEB={} is not a file",
        deb.display()
    );
    Some(deb)
}

/// `dpkg-query`'s `${Status}` of the package, or None when it is neither
/// installed nor has config files left.
fn status() -> Option<String> {
    let out = run_bounded(
        Command::new("dpkg-query").args(["-W", "-f=${Status}", "agentmon"]),
        RUN,
    );
    let s = text(&out.stdout);
    (out.status.success() && !s.ends_with("not-installed")).then_some(s)
}

/// An installed package, purged on drop whatever happened; the machine's
/// own GeoIP folder (from `cargo xtask setup`) is set aside meanwhile and
/// put back, and a bpffs this test mounted is unmounted.
struct Installed {
    geoip_aside: Option<PathBuf>,
    mounted_bpffs: bool,
}

const GEOIP: &str = "/var/lib/agentmon/geoip";
const PINS: &str = "/sys/fs/bpf/agentmon";

impl Installed {
    fn prepare() -> Self {
        if let Some(s) = status() {
            panic!(
                "agentmon is already known to dpkg here ({s}); this test installs and purges it: \
                 run `cargo xtask uninstall --purge` first"
            );
        }
        let user = run_bounded(Command::new("getent").args(["passwd", "agentmon"]), RUN);
        assert!(
            !user.status.success(),
            "a user agentmon exists already ({}); the package creates it and its purge \
             removes it: `userdel agentmon` first",
            text(&user.stdout).trim()
        );
        let aside = PathBuf::from(format!("{GEOIP}.package-test"));
        let geoip_aside = Path::new(GEOIP).exists().then(|| {
            let _ = fs::remove_dir_all(&aside);
            fs::rename(GEOIP, &aside).unwrap();
            aside
        });
        let bpffs = fs::read_to_string("/proc/mounts")
            .unwrap()
            .lines()
            .any(|l| {
                l.split_whitespace()
                    .skip(1)
                    .take(2)
                    .eq(["/sys/fs/bpf", "bpf"])
            });
        let mut me = Self {
            geoip_aside,
            mounted_bpffs: false,
        };
        if !bpffs {
            // As the unit's ExecStartPre does where systemd has not.
            ok(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]));
            me.mounted_bpffs = true;
        }
        me
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if status().is_some() {
            let _ = run_bounded(Command::new("dpkg").args(["--purge", "agentmon"]), RUN);
        }
        let _ = fs::remove_dir_all(PINS);
        if let Some(aside) = &self.geoip_aside {
            let _ = fs::remove_dir_all(GEOIP);
            if let Err(e) = fs::rename(aside, GEOIP) {
                eprintln!("could not put {} back to {GEOIP}: {e}", aside.display());
            }
        }
        if self.mounted_bpffs {
            let _ = run_bounded(Command::new("umount").arg("/sys/fs/bpf"), RUN);
        }
    }
}

/// Mode (permission bits), owner and group names of `path`.
fn owned(path: &str) -> (u32, String, String) {
    let m = fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let name = |db: &str, id: u32| {
        let out = ok(Command::new("getent").args([db, &id.to_string()]));
        text(&out.stdout).split(':').next().unwrap().to_owned()
    };
    (
        m.permissions().mode() & 0o7777,
        name("passwd", m.uid()),
        name("group", m.gid()),
    )
}

fn root_file(path: &str, mode: u32) {
    assert_eq!(owned(path), (mode, "root".into(), "root".into()), "{path}");
}

const WANTS: &str = "/etc/systemd/system/multi-user.target.wants/agentmon.service";

#[test]
fn deb_installs_removes_and_purges_cleanly() {
    let Some(deb) = deb_to_install() else {
        return;
    };
    let installed = Installed::prepare();
    let out = ok(Command::new("dpkg").arg("-i").arg(&deb));
    let said = text(&out.stdout);
    if !Path::new("/run/systemd/system").is_dir() {
        assert!(
            said.contains("systemd is not running")
                && said.contains("/usr/bin/agentmon run --config /etc/agentmon/config.toml"),
            "dpkg -i should say how to start agentmon by hand:\n{said}"
        );
    }
    assert_eq!(status().as_deref(), Some("install ok installed"));

    // Files, modes, owners.
    root_file("/usr/bin/agentmon", 0o755);
    root_file("/etc/agentmon/config.toml", 0o644);
    root_file("/usr/lib/systemd/system/agentmon.service", 0o644);
    for f in ["country.mmdb", "asn.mmdb", "LICENSE.txt", "SOURCES.txt"] {
        root_file(&format!("{GEOIP}/{f}"), 0o644);
    }
    root_file("/usr/share/doc/agentmon/README.md", 0o644);
    root_file("/usr/share/doc/agentmon/copyright", 0o644);
    assert_eq!(
        owned("/var/log/agentmon"),
        (0o750, "agentmon".into(), "agentmon".into())
    );
    let same = |installed: &str, shipped: &str| {
        assert_eq!(
            fs::read(installed).unwrap(),
            fs::read(packaging().join(shipped)).unwrap(),
            "{installed} differs from packaging/{shipped}"
        );
    };
    same("/etc/agentmon/config.toml", "config.toml");
    same(
        "/usr/lib/systemd/system/agentmon.service",
        "agentmon.service",
    );
    let country = fs::read(format!("{GEOIP}/country.mmdb")).unwrap();
    assert!(
        country.windows(14).any(|w| w == b"\xab\xcd\xefMaxMind.com"),
        "country.mmdb is not a MaxMind DB file"
    );
    let sources = fs::read_to_string(format!("{GEOIP}/SOURCES.txt")).unwrap();
    assert!(
        sources.contains("country.mmdb sha256=") && sources.contains("asn.mmdb sha256="),
        "{sources}"
    );

    // The config is a conffile: an upgrade keeps the admin's edits.
    let out = ok(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "agentmon"]));
    let conffiles = text(&out.stdout);
    assert!(
        conffiles.trim().starts_with("/etc/agentmon/config.toml ")
            && !conffiles.contains("obsolete"),
        "conffiles: {conffiles:?}"
    );

    // The service user: a system account that cannot log in.
    let out = ok(Command::new("getent").args(["passwd", "agentmon"]));
    let passwd = text(&out.stdout);
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    let uid: u32 = fields[2].parse().unwrap();
    assert!(uid < 1000, "agentmon is not a system user: {passwd}");
    assert_eq!(
        fields[5..],
        ["/nonexistent", "/usr/sbin/nologin"],
        "{passwd}"
    );
    let out = ok(Command::new("getent").args(["group", "agentmon"]));
    assert_eq!(
        text(&out.stdout).split(':').nth(2),
        Some(fields[3]),
        "primary group"
    );

    // What runs: the binary, the shipped config, the unit as installed.
    let out = ok(Command::new("/usr/bin/agentmon").arg("--version"));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("agentmon {}", env!("CARGO_PKG_VERSION"))
    );
    ok(Command::new("/usr/bin/agentmon").args(["check-config", "/etc/agentmon/config.toml"]));
    let out = systemd_analyze(
        &["verify"],
        Path::new("/usr/lib/systemd/system/agentmon.service"),
    );
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "installed unit: {out:?}"
    );
    // Enabled for the next boot with systemd, even where it does not run now.
    assert!(Path::new(WANTS).is_symlink(), "{WANTS} missing");

    // Reinstalling (an upgrade) keeps an edited config.
    let edited = "listen = \"127.0.0.1:9978\"\n";
    fs::write("/etc/agentmon/config.toml", edited).unwrap();
    ok(Command::new("dpkg").arg("-i").arg(&deb));
    assert_eq!(
        fs::read_to_string("/etc/agentmon/config.toml").unwrap(),
        edited
    );

    // The unit's privileged ExecStartPre makes the pin folder the service
    // user's, which is what lets ReadWritePaths= open it to agentmon.
    let unit = fs::read_to_string("/usr/lib/systemd/system/agentmon.service").unwrap();
    let script = unit_value(&unit, "ExecStartPre")
        .strip_prefix("+/bin/sh -ec '")
        .and_then(|s| s.strip_suffix('\''))
        .expect("ExecStartPre=+/bin/sh -ec '...'");
    ok(Command::new("sh").args(["-ec", script]));
    ok(Command::new("sh").args(["-ec", script])); // again, as at each start
    assert_eq!(owned(PINS), (0o700, "agentmon".into(), "agentmon".into()));

    // -r: the program goes, the config, the logs and the user stay.
    ok(Command::new("dpkg").args(["-r", "agentmon"]));
    assert_eq!(status().as_deref(), Some("deinstall ok config-files"));
    for gone in [
        "/usr/bin/agentmon",
        "/usr/lib/systemd/system/agentmon.service",
        "/usr/share/doc/agentmon",
        GEOIP,
    ] {
        assert!(!Path::new(gone).exists(), "{gone} left after dpkg -r");
    }
    assert_eq!(
        fs::read_to_string("/etc/agentmon/config.toml").unwrap(),
        edited
    );
    assert!(Path::new("/var/log/agentmon").is_dir());
    ok(Command::new("getent").args(["passwd", "agentmon"]));

    // --purge: everything.
    ok(Command::new("dpkg").args(["--purge", "agentmon"]));
    assert_eq!(status(), None, "dpkg still knows agentmon after --purge");
    for gone in ["/etc/agentmon", "/var/log/agentmon", WANTS, PINS] {
        assert!(
            fs::symlink_metadata(gone).is_err(),
            "{gone} left after dpkg --purge"
        );
    }
    for db in ["passwd", "group"] {
        let out = run_bounded(Command::new("getent").args([db, "agentmon"]), RUN);
        assert!(!out.status.success(), "{db} agentmon left after --purge");
    }
    drop(installed);
}
