use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
};

use super::*;

#[derive(Default)]
struct Fake {
    /// (program, target, where, library, pid)
    attached: Vec<(String, String, ProbeAt, TlsLib, Option<u32>)>,
    detached: Vec<String>,
    refuse: Option<&'static str>,
    /// Offsets read from files, by file.
    parsed: Vec<String>,
    /// Files cannot be opened (renamed away, no CAP_SYS_ADMIN).
    unopenable: bool,
    /// Files are opened for real (else named in the root).
    real_files: bool,
    /// A file renamed while it is searched, before its offsets are read.
    rename: Option<(PathBuf, PathBuf)>,
}

impl Attacher for Fake {
    type Link = usize;
    fn attach(
        &mut self,
        program: &'static str,
        target: &Path,
        at: &ProbeAt,
        lib: TlsLib,
        pid: Option<NonZeroU32>,
    ) -> Result<usize, ProbeError> {
        self.attached.push((
            program.into(),
            target.display().to_string(),
            at.clone(),
            lib,
            pid.map(NonZeroU32::get),
        ));
        Ok(self.attached.len())
    }
    fn detach(&mut self, program: &str, _link: usize) {
        self.detached.push(program.into());
    }
    fn open(&mut self, file: &Mapped, pid: u32, root: &Path, is_exe: bool) -> Option<Target> {
        if self.real_files {
            return Target::open(file, pid, root, is_exe);
        }
        let path = root.join(file.path.strip_prefix("/").unwrap());
        (!self.unopenable).then(|| Target::named(path))
    }
    fn offsets(
        &mut self,
        target: &Path,
        names: &[&str],
    ) -> Result<HashMap<String, u64>, ProbeError> {
        self.parsed.push(target.display().to_string());
        if let Some((from, to)) = self.rename.take() {
            std::fs::rename(from, to).unwrap();
            std::fs::File::open(target).map_err(|e| ProbeError::Elf {
                path: target.into(),
                reason: e.to_string(),
            })?;
        }
        // Every function exists, at 0x1000 per position, except a refused one.
        Ok(names
            .iter()
            .enumerate()
            .filter(|(_, n)| Some(**n) != self.refuse)
            .map(|(i, n)| (n.to_string(), 0x1000 * (i as u64 + 1)))
            .collect())
    }
}

const MAPS: &str = "\
55d0c0a28000-55d0c0a8c000 r-xp 00028000 fe:01 100 /usr/bin/curl
7f1c2b400000-7f1c2b49a000 r-xp 00000000 fe:01 200 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1c2b600000-7f1c2b610000 r-xp 00000000 fe:01 300 /usr/lib/x86_64-linux-gnu/libgnutls.so.30
7f1c2b700000-7f1c2b710000 r-xp 00000000 fe:01 400 /usr/lib/x86_64-linux-gnu/libc.so.6
";

#[test]
fn shared_libraries_are_probed_per_process_and_unprobed_at_its_exit() {
    let (mut probes, mut fake) = (TlsProbes::default(), Fake::default());
    let now = Instant::now();
    probes.scan(
        10,
        MAPS,
        Some(Path::new("/usr/bin/curl")),
        Path::new("/proc/10/root"),
        &mut fake,
        now,
    );
    // libssl: 4 entries + 4 returns; gnutls: 2 + 2; all for process 10 only.
    assert_eq!(fake.attached.len(), 12);
    assert!(fake.attached.iter().all(|a| a.4 == Some(10)));
    assert!(
        fake.attached
            .iter()
            .any(|(p, t, at, lib, _)| p == "tls_write_ex"
                && t == "/proc/10/root/usr/lib/x86_64-linux-gnu/libssl.so.3"
                && *at == ProbeAt::Offset(0x3000)
                && *lib == TlsLib::OpenSsl)
    );
    // Another agent process mapping the same files gets its own probes;
    // the files are parsed once.
    probes.scan(11, MAPS, None, Path::new("/proc/11/root"), &mut fake, now);
    assert_eq!(fake.attached.len(), 24);
    assert_eq!(fake.attached.iter().filter(|a| a.4 == Some(11)).count(), 12);
    assert_eq!(fake.parsed.len(), 2, "{:?}", fake.parsed);
    assert_eq!(probes.attached()[&TlsLib::OpenSsl], 16);
    assert_eq!(
        probes.libs_of(11).collect::<HashSet<_>>(),
        HashSet::from([TlsLib::OpenSsl, TlsLib::GnuTls])
    );
    // A process's probes go with it, at once; the other's stay.
    probes.exited(10, now, &mut fake);
    assert_eq!(fake.detached.len(), 12);
    assert_eq!(probes.attached()[&TlsLib::OpenSsl], 8);
    assert_eq!(probes.libs_of(10).count(), 0);
    probes.exited(11, now, &mut fake);
    assert_eq!(fake.detached.len(), 24);
    assert!(probes.attached().is_empty());
    // Scanning again is a no-op for a known process until RESCAN passes.
    probes.scan(12, MAPS, None, Path::new("/"), &mut fake, now);
    probes.scan(12, MAPS, None, Path::new("/"), &mut fake, now);
    assert_eq!(
        fake.attached.len(),
        36,
        "never attached twice for one process"
    );
}

#[test]
fn optional_symbols_may_be_missing_but_required_ones_fail_the_file() {
    let (mut probes, mut fake) = (
        TlsProbes::<usize>::default(),
        Fake {
            refuse: Some("SSL_read_ex"),
            ..Fake::default()
        },
    );
    probes.scan(1, MAPS, None, Path::new("/"), &mut fake, Instant::now());
    assert_eq!(probes.attached()[&TlsLib::OpenSsl], 6);
    let (mut probes, mut fake) = (
        TlsProbes::<usize>::default(),
        Fake {
            refuse: Some("gnutls_record_recv"),
            ..Fake::default()
        },
    );
    probes.scan(1, MAPS, None, Path::new("/"), &mut fake, Instant::now());
    assert!(!probes.attached().contains_key(&TlsLib::GnuTls));
    // A required function is missing: nothing is attached to that file.
    assert!(
        fake.attached
            .iter()
            .all(|(_, t, _, _, _)| !t.contains("gnutls"))
    );
}

#[test]
fn rescans_are_rate_limited() {
    let (mut probes, mut fake) = (TlsProbes::<usize>::default(), Fake::default());
    let t0 = Instant::now();
    // No TLS library yet: look again at every chance.
    probes.scan(1, "", None, Path::new("/"), &mut fake, t0);
    probes.scan(
        1,
        MAPS,
        None,
        Path::new("/"),
        &mut fake,
        t0 + Duration::from_millis(2),
    );
    assert_eq!(fake.attached.len(), 12);
    // Found: new mappings are looked for at most every RESCAN.
    let more = "7f1c2b900000-7f1c2b910000 r-xp 00000000 fe:01 500 /opt/libssl.so.1.1\n";
    probes.scan(
        1,
        more,
        None,
        Path::new("/"),
        &mut fake,
        t0 + Duration::from_millis(10),
    );
    assert_eq!(fake.attached.len(), 12);
    probes.scan(
        1,
        more,
        None,
        Path::new("/"),
        &mut fake,
        t0 + RESCAN + Duration::from_millis(3),
    );
    assert_eq!(fake.attached.len(), 20);
}

#[test]
fn processes_are_young_from_their_first_scan_until_young_has_passed_or_they_exit() {
    let (mut probes, mut fake) = (TlsProbes::<usize>::default(), Fake::default());
    let t0 = Instant::now();
    let root = Path::new("/");
    probes.scan(1, MAPS, None, root, &mut fake, t0);
    probes.scan(2, "", None, root, &mut fake, t0 + Duration::from_secs(10));
    // A later scan does not make a process young again.
    probes.scan(1, MAPS, None, root, &mut fake, t0 + Duration::from_secs(20));
    let young = |p: &TlsProbes<usize>, at: Duration| {
        let mut pids = p.young(t0 + at);
        pids.sort_unstable();
        pids
    };
    assert_eq!(young(&probes, Duration::from_secs(11)), [1, 2]);
    assert_eq!(young(&probes, YOUNG), [2]);
    // A new program is young from its next scan; an exited process is gone.
    probes.expect(1, Path::new("/nonexistent/program"), root, &mut fake);
    probes.scan(1, MAPS, None, root, &mut fake, t0 + YOUNG);
    probes.exited(2, t0 + YOUNG, &mut fake);
    assert_eq!(young(&probes, YOUNG + Duration::from_secs(1)), [1]);
}

#[test]
fn a_process_becoming_young_wakes_the_watch_once() {
    let (mut probes, mut fake) = (TlsProbes::<usize>::default(), Fake::default());
    let notify = Arc::new(Notify::new());
    probes.notify_young(notify.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let woken = || {
        rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(5), notify.notified())
                .await
                .is_ok()
        })
    };
    assert!(!woken());
    let t0 = Instant::now();
    probes.scan(7, MAPS, None, Path::new("/"), &mut fake, t0);
    assert!(woken());
    // Its later scans are not news.
    probes.scan(7, MAPS, None, Path::new("/"), &mut fake, t0 + YOUNG);
    assert!(!woken());
}

#[test]
fn a_copy_of_a_build_already_searched_is_not_searched_again() {
    // This test's own executable stands in for libssl (the fake reads no
    // symbols); the linker gave it a GNU build id.
    let exe = std::env::current_exe().unwrap();
    let lib = exe.as_path();
    assert!(plan::build_id(lib).is_some());
    let dir = tempfile::tempdir().unwrap();
    let mut maps = String::new();
    for name in ["a", "b"] {
        let copy = dir.path().join(name).join("libssl.so.3");
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::copy(lib, &copy).unwrap();
        let m = std::fs::metadata(&copy).unwrap();
        use std::os::unix::fs::MetadataExt;
        maps += &format!(
            "7f00-7f10 r-xp 00000000 {:02x}:{:02x} {} {}\n",
            libc::major(m.dev()),
            libc::minor(m.dev()),
            m.ino(),
            copy.display()
        );
    }
    let (mut probes, mut fake) = (TlsProbes::default(), Fake::default());
    probes.scan(10, &maps, None, Path::new("/"), &mut fake, Instant::now());
    // Both copies probed for the process, their symbols read from one.
    assert_eq!(fake.attached.len(), 16);
    assert_eq!(fake.parsed.len(), 1, "{:?}", fake.parsed);
}

#[test]
fn a_file_that_cannot_be_opened_now_is_not_given_up() {
    let (mut probes, mut fake) = (TlsProbes::default(), Fake::default());
    let maps = "7f00-7f10 r-xp 00000000 fe:01 200 /usr/lib/x86_64-linux-gnu/libssl.so.3\n";
    let t0 = Instant::now();
    fake.unopenable = true;
    probes.scan(10, maps, None, Path::new("/"), &mut fake, t0);
    assert!(fake.attached.is_empty());
    // Another process maps it by a name that opens (or this one, later).
    fake.unopenable = false;
    probes.scan(11, maps, None, Path::new("/"), &mut fake, t0);
    assert_eq!(fake.attached.len(), 8);
}

/// Codex renames its app-server daemon's directory while agentmon
/// searches the copy it runs: the file is read and attached through the
/// descriptor agentmon opened it by, not by its name.
#[test]
fn a_file_renamed_while_it_is_searched_is_read_and_attached() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let (staged, released) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir(&staged).unwrap();
    let lib = staged.join("libssl.so.3");
    std::fs::write(&lib, b"not read by the fake").unwrap();
    let ino = std::fs::metadata(&lib).unwrap().ino();
    let maps = format!("7f00-7f10 r-xp 00000000 fe:01 {ino} {}\n", lib.display());
    let mut fake = Fake {
        real_files: true,
        rename: Some((staged, released)),
        ..Fake::default()
    };
    let mut probes = TlsProbes::default();
    probes.scan(10, &maps, None, Path::new("/"), &mut fake, Instant::now());
    assert_eq!(fake.attached.len(), 8, "{:?}", fake.parsed);
    assert!(fake.parsed[0].starts_with("/proc/self/fd/"));
    assert!(fake.attached.iter().all(|a| a.1 == fake.parsed[0]));
}

/// A program rebuilt and copied over the installed one keeps its inode:
/// the plan found for the old build is not used for the new one.
#[test]
fn a_file_rewritten_in_place_is_searched_again() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("libssl.so.3");
    std::fs::write(&lib, b"the first build").unwrap();
    let ino = std::fs::metadata(&lib).unwrap().ino();
    let maps = format!("7f00-7f10 r-xp 00000000 fe:01 {ino} {}\n", lib.display());
    let mut fake = Fake {
        real_files: true,
        ..Fake::default()
    };
    let mut probes = TlsProbes::default();
    let t0 = Instant::now();
    probes.scan(10, &maps, None, Path::new("/"), &mut fake, t0);
    probes.exited(10, t0, &mut fake);
    probes.scan(11, &maps, None, Path::new("/"), &mut fake, t0);
    assert_eq!(fake.parsed.len(), 1, "the same file is searched once");
    probes.exited(11, t0, &mut fake);

    std::fs::write(&lib, b"the second, longer build").unwrap();
    assert_eq!(std::fs::metadata(&lib).unwrap().ino(), ino);
    probes.scan(12, &maps, None, Path::new("/"), &mut fake, t0);
    assert_eq!(fake.parsed.len(), 2, "the rewritten file is searched again");
    assert_eq!(fake.attached.len(), 3 * 8);
}

#[test]
fn returns_then_reads_then_writes_are_attached() {
    let (mut probes, mut fake) = (TlsProbes::default(), Fake::default());
    let maps = "7f00-7f10 r-xp 00000000 fe:01 200 /usr/lib/x86_64-linux-gnu/libssl.so.3\n";
    probes.scan(
        10,
        maps,
        None,
        Path::new("/proc/10/root"),
        &mut fake,
        Instant::now(),
    );
    let programs: Vec<&str> = fake.attached.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(
        programs,
        [
            "tls_return",
            "tls_read",
            "tls_return",
            "tls_read_ex",
            "tls_return",
            "tls_write",
            "tls_return",
            "tls_write_ex",
        ]
    );
}

/// Codex's plan (and Copilot CLI's add-on's): stripped OpenSSL's probes,
/// with return probes, and aws-lc's, whose open has its own.
fn openssl_and_aws_lc() -> Plan {
    let at = ProbeAt::Offset;
    Plan {
        lib: TlsLib::OpenSslStatic,
        scope: Scope::PerProcess,
        probes: vec![
            (TLS_ENTRY_READ_EX, at(0x10), true),
            (crate::kernel::TLS_ENTRY_WRITE_EX, at(0x20), true),
            (AEAD_OPEN_RETURN, at(0x30), true),
            (AEAD_OPEN, at(0x30), true),
            (AEAD_SEAL, at(0x40), true),
        ],
        uretprobes: true,
    }
}

#[test]
fn aws_lc_programs_bring_their_own_return_probe_which_comes_first() {
    let at = ProbeAt::Offset;
    let mut fake = Fake::default();
    let plan = openssl_and_aws_lc();
    let links = attach_plan(&plan, Path::new("/codex"), None, &mut fake).unwrap();
    let order: Vec<(&str, ProbeAt)> = fake
        .attached
        .iter()
        .map(|(program, _, at, _, _)| (program.as_str(), at.clone()))
        .collect();
    assert_eq!(
        order,
        [
            ("aead_open_return", at(0x30)),
            ("tls_return", at(0x10)),
            ("tls_read_ex", at(0x10)),
            ("aead_open", at(0x30)),
            ("tls_return", at(0x20)),
            ("tls_write_ex", at(0x20)),
            ("aead_seal", at(0x40)),
        ]
    );
    assert_eq!(links.len(), 7);
}

/// In a file that links both, aws-lc's probes count for rustls in the
/// gauges, OpenSSL's for the file's plan.
#[test]
fn aws_lc_probes_count_for_rustls_in_a_file_that_links_openssl_too() {
    let (mut probes, mut fake) = (TlsProbes::default(), Fake::default());
    let maps = "55d0c0a28000-55d0c0a8c000 r-xp 00028000 fe:01 500 /codex\n";
    probes
        .plans
        .insert((0xfe, 0x01, 500), (None, openssl_and_aws_lc()));
    let exe = Some(Path::new("/codex"));
    probes.scan(20, maps, exe, Path::new("/"), &mut fake, Instant::now());
    // OpenSSL: 2 entries + 2 returns; aws-lc: 3.
    let attached = probes.attached();
    assert_eq!(attached[&TlsLib::OpenSslStatic], 4);
    assert_eq!(attached[&TlsLib::Rustls], 3);
    assert_eq!(
        probes.libs_of(20).collect::<HashSet<_>>(),
        HashSet::from([TlsLib::OpenSslStatic, TlsLib::Rustls])
    );
}

const LIBSSL_MAPS: &str =
    "7f1c2b400000-7f1c2b49a000 r-xp 00000000 fe:01 200 /usr/lib/x86_64-linux-gnu/libssl.so.3\n";

/// A searcher that keeps what it is handed, for the test to run.
fn keeping(handed: &Arc<Mutex<Vec<Search>>>) -> Searcher {
    let handed = Arc::clone(handed);
    Box::new(move |search| {
        handed.lock().unwrap().push(*search);
        Ok(())
    })
}

#[test]
fn a_search_on_another_thread_attaches_for_the_processes_still_waiting() {
    let handed = Arc::new(Mutex::new(Vec::new()));
    let (mut probes, mut fake) = (TlsProbes::default(), Fake::default());
    probes.search_with(keeping(&handed));
    let now = Instant::now();
    for pid in [10, 11, 12] {
        probes.scan(pid, LIBSSL_MAPS, None, Path::new("/"), &mut fake, now);
    }
    // Handed over once, for all three; nothing attached meanwhile.
    let mut searches: Vec<Search> = handed.lock().unwrap().drain(..).collect();
    assert_eq!(searches.len(), 1);
    assert!(fake.attached.is_empty());
    probes.exited(12, now, &mut fake);
    let search = searches.pop().unwrap();
    let done = std::thread::spawn(move || search::run(search))
        .join()
        .unwrap();
    probes.searched(done, &mut fake);
    // Debian's libssl: 4 entry and 4 return probes, for 10 and 11 alone.
    let pids: HashSet<Option<u32>> = fake.attached.iter().map(|a| a.4).collect();
    assert_eq!(pids, HashSet::from([Some(10), Some(11)]));
    assert_eq!(fake.attached.len(), 16);
    assert_eq!(probes.attached()[&TlsLib::OpenSsl], 16);
    assert_eq!(probes.libs_of(11).collect::<Vec<_>>().len(), 8);
    // Their exits detach them; a later process uses the plan found.
    probes.exited(10, now, &mut fake);
    probes.exited(11, now, &mut fake);
    assert_eq!(fake.detached.len(), 16);
    probes.scan(13, LIBSSL_MAPS, None, Path::new("/"), &mut fake, now);
    assert!(handed.lock().unwrap().is_empty());
    assert_eq!(fake.attached.len(), 24);
}

#[test]
fn a_search_ending_after_the_stop_attaches_nothing_and_one_not_taken_runs_here() {
    let handed = Arc::new(Mutex::new(Vec::new()));
    let (mut probes, mut fake) = (TlsProbes::default(), Fake::default());
    probes.search_with(keeping(&handed));
    let now = Instant::now();
    probes.scan(10, LIBSSL_MAPS, None, Path::new("/"), &mut fake, now);
    probes.detach_all(&mut fake);
    let search = handed.lock().unwrap().pop().unwrap();
    probes.searched(search::run(search), &mut fake);
    assert!(fake.attached.is_empty());
    // The searcher's thread is gone: the search runs on the caller's.
    let (mut probes, mut fake) = (TlsProbes::default(), Fake::default());
    probes.search_with(Box::new(Err));
    probes.scan(10, LIBSSL_MAPS, None, Path::new("/"), &mut fake, now);
    assert_eq!(fake.attached.len(), 8);
}
