//! Process facts read from `/proc`, behind [`ProcSource`] so matching and tree
//! building can be tested with fakes.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Path, PathBuf};

/// What agent matching needs to know about one process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    /// Target of `/proc/<pid>/exe`; `None` for kernel threads, zombies, or when
    /// the link cannot be read.
    pub exe: Option<PathBuf>,
    /// The inode number of that file (a deleted one's too).
    pub exe_ino: Option<u64>,
    /// Where agentmon opens that file to read it: `/proc/<pid>/exe`, which
    /// reaches it from any mount namespace, or for a process gone before it
    /// was read, the file its exec path links to. `None` when neither is
    /// known.
    pub exe_file: Option<PathBuf>,
    /// Empty for kernel threads and zombies.
    pub argv: Vec<String>,
    pub comm: String,
    /// Only the variables that were asked for: environments hold secrets.
    pub env: Vec<(String, String)>,
    /// The real uid (who ran it, as audit logs mean `uid`), from
    /// `/proc/<pid>/status`; `None` if it could not be read.
    pub uid: Option<u32>,
}

/// Where process facts come from: the real `/proc`, or a fake in tests.
pub trait ProcSource {
    /// All process ids visible now.
    fn pids(&self) -> io::Result<Vec<u32>>;
    /// Facts about `pid`, keeping only the environment variables named in
    /// `env_names`. `None` if the process is gone.
    fn read(&self, pid: u32, env_names: &[String]) -> Option<ProcInfo>;
    /// The inode number of the program `pid` runs now.
    fn exe_ino(&self, pid: u32) -> Option<u64> {
        self.read(pid, &[])?.exe_ino
    }
    /// Whether `pid` runs another program than the one of inode `ino` (an
    /// exec's, as the kernel read it): it has exec'd again since.
    fn runs_other(&self, pid: u32, ino: Option<u64>) -> bool {
        ino.is_some_and(|ino| self.exe_ino(pid).is_some_and(|now| now != ino))
    }
    /// Whether process `pid` exists.
    fn alive(&self, pid: u32) -> bool {
        self.read(pid, &[]).is_some()
    }
    /// The file an exec's absolute `path` names now, links followed: what
    /// `/proc/<pid>/exe` would have said of a process gone before it was
    /// read (npm's bin links and version managers' shims are links).
    fn resolve(&self, _path: &str) -> Option<PathBuf> {
        None
    }
    /// The text of `/proc/<pid>/maps`; `None` if the process is gone.
    fn maps(&self, _pid: u32) -> Option<String> {
        None
    }
    /// Local TCP ports in LISTEN state as seen from `pid`'s network
    /// namespace. Empty if the process is gone.
    fn listening_ports(&self, _pid: u32) -> HashSet<u16> {
        HashSet::new()
    }
}

/// [`ProcSource`] backed by a procfs mount.
#[derive(Debug, Clone)]
pub struct RealProc {
    root: PathBuf,
}

impl Default for RealProc {
    fn default() -> Self {
        Self::new()
    }
}

impl RealProc {
    pub fn new() -> Self {
        Self::with_root("/proc")
    }

    /// A procfs-shaped tree somewhere else (tests build one in a tempdir).
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn pid_dir(&self, pid: u32) -> PathBuf {
        self.root.join(pid.to_string())
    }
}

impl ProcSource for RealProc {
    fn alive(&self, pid: u32) -> bool {
        self.pid_dir(pid).exists()
    }

    fn exe_ino(&self, pid: u32) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        // stat follows the link to the file itself, in whichever mount
        // namespace, deleted or not.
        fs::metadata(self.pid_dir(pid).join("exe"))
            .ok()
            .map(|m| m.ino())
    }

    fn maps(&self, pid: u32) -> Option<String> {
        fs::read_to_string(self.pid_dir(pid).join("maps")).ok()
    }

    /// Followed in agentmon's own mount namespace: a gone process's is gone
    /// with it. Where they differ (a container), a path that names nothing
    /// here stays as the kernel gave it.
    fn resolve(&self, path: &str) -> Option<PathBuf> {
        let path = Path::new(path);
        if !path.is_absolute() {
            return None;
        }
        fs::canonicalize(path).ok()
    }

    /// `/proc/<pid>/net/tcp` and `tcp6`.
    fn listening_ports(&self, pid: u32) -> HashSet<u16> {
        let net = self.pid_dir(pid).join("net");
        let mut ports = HashSet::new();
        for name in ["tcp", "tcp6"] {
            // tcp6 is missing when IPv6 is disabled; that is not an error.
            if let Ok(text) = fs::read_to_string(net.join(name)) {
                ports.extend(parse_listening(&text));
            }
        }
        ports
    }

    fn pids(&self) -> io::Result<Vec<u32>> {
        let mut pids = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            if let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
                pids.push(pid);
            }
        }
        Ok(pids)
    }

    fn read(&self, pid: u32, env_names: &[String]) -> Option<ProcInfo> {
        let dir = self.pid_dir(pid);
        // stat is readable for every process we can see, so its absence means
        // the process has exited. The other files may still vanish while we
        // read them; we then return what we have rather than nothing.
        let stat = fs::read_to_string(dir.join("stat")).ok()?;
        let (stat_comm, ppid) = parse_stat(&stat)?;
        let comm = match fs::read(dir.join("comm")) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                text.strip_suffix('\n').unwrap_or(&text).to_owned()
            }
            Err(_) => stat_comm,
        };
        let exe = fs::read_link(dir.join("exe")).ok().map(strip_deleted);
        let exe_ino = self.exe_ino(pid);
        let argv = fs::read(dir.join("cmdline"))
            .map(|b| parse_cmdline(&b))
            .unwrap_or_default();
        let uid = fs::read_to_string(dir.join("status"))
            .ok()
            .and_then(|text| parse_status_uid(&text));
        // Do not even open environ when nothing is wanted from it.
        let env = if env_names.is_empty() {
            Vec::new()
        } else {
            fs::read(dir.join("environ"))
                .map(|b| parse_environ(&b, env_names))
                .unwrap_or_default()
        };
        Some(ProcInfo {
            pid,
            ppid,
            exe_file: exe.is_some().then(|| dir.join("exe")),
            exe,
            exe_ino,
            argv,
            comm,
            env,
            uid,
        })
    }
}

/// The kernel appends " (deleted)" to the exe link once the binary is
/// replaced on disk, which self-updating agents do all the time.
fn strip_deleted(path: PathBuf) -> PathBuf {
    const SUFFIX: &[u8] = b" (deleted)";
    let bytes = path.as_os_str().as_bytes();
    match bytes.strip_suffix(SUFFIX) {
        Some(kept) => PathBuf::from(OsString::from_vec(kept.to_vec())),
        None => path,
    }
}

/// `(comm, ppid)` from the text of `/proc/<pid>/stat`.
///
/// comm sits in parentheses and may itself contain spaces and ')', so the
/// fields after it are found from the last ')'.
pub fn parse_stat(text: &str) -> Option<(String, u32)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let mut rest = text.get(close + 1..)?.split_ascii_whitespace();
    let _state = rest.next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((comm, ppid))
}

/// The real uid from the text of `/proc/<pid>/status`, whose `Uid:` line
/// holds the real, effective, saved and filesystem uids.
pub fn parse_status_uid(text: &str) -> Option<u32> {
    text.lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// argv from `/proc/<pid>/cmdline`: NUL-separated, NUL-terminated.
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|&b| b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// The variables named in `names` from `/proc/<pid>/environ`. Others are
/// never copied out of the buffer, so they cannot leak into logs or metrics.
pub fn parse_environ(bytes: &[u8], names: &[String]) -> Vec<(String, String)> {
    let mut kept = Vec::new();
    for entry in bytes.split(|&b| b == 0) {
        let Some(eq) = entry.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (name, value) = (&entry[..eq], &entry[eq + 1..]);
        if names.iter().any(|n| n.as_bytes() == name) {
            kept.push((
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            ));
        }
    }
    kept
}

/// Local ports in state 0A (LISTEN) from the text of `/proc/net/tcp` or
/// `/proc/net/tcp6`. Lines that do not parse (the header) are skipped.
pub fn parse_listening(text: &str) -> HashSet<u16> {
    const TCP_LISTEN: &str = "0A";
    let mut ports = HashSet::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(_slot), Some(local), Some(_remote), Some(state)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if state != TCP_LISTEN {
            continue;
        }
        let port = local
            .rsplit_once(':')
            .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
        if let Some(port) = port {
            ports.insert(port);
        }
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:26F1 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 412345 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20211 1 0000000000000000 100 0 0 10 0
   2: 0100007F:26F1 0100007F:B3A2 01 00000000:00000000 00:00000000 00000000  1000        0 412999 1 0000000000000000 20 4 30 10 -1
   3: 0F02000A:C8E4 22D8FBA0:01BB 01 00000000:00000000 02:00000A1E 00000000  1000        0 413001 2 0000000000000000 20 4 26 10 -1
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0277 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 19001 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:A1B2 00000000000000000000000001000000:0277 06 00000000:00000000 03:000011C9 00000000     0        0 0 3 0000000000000000
";

    #[test]
    fn stat_with_hostile_comm() {
        let stat = "4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 1234 0 0 0 5 3 0 0 20 0 1 0 999 12345678 100";
        assert_eq!(parse_stat(stat), Some(("a) b (c)".to_owned(), 17)));
    }

    #[test]
    fn stat_plain_and_broken() {
        assert_eq!(
            parse_stat("1 (systemd) S 0 1 1 0 -1 4194560"),
            Some(("systemd".to_owned(), 0))
        );
        assert_eq!(parse_stat("1 (systemd"), None);
        assert_eq!(parse_stat("1 (x) S"), None);
        assert_eq!(parse_stat("1 (x) S notanumber"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn cmdline_split() {
        assert_eq!(
            parse_cmdline(b"node\0/usr/lib/cli.js\0--flag\0"),
            ["node", "/usr/lib/cli.js", "--flag"]
        );
        // An empty argument in the middle is real and kept.
        assert_eq!(parse_cmdline(b"a\0\0b\0"), ["a", "", "b"]);
        assert!(parse_cmdline(b"").is_empty());
        assert_eq!(parse_cmdline(b"bad\xff\0"), ["bad\u{fffd}"]);
        // Processes that rewrite their title may drop the terminator.
        assert_eq!(parse_cmdline(b"2.1.197"), ["2.1.197"]);
    }

    #[test]
    fn environ_keeps_only_named() {
        let environ =
            b"HOME=/home/u\0CLAUDECODE=1\0ANTHROPIC_API_KEY=sk-secret\0EMPTY=\0NOEQ\0A=b=c\0";
        let names = ["CLAUDECODE".to_owned(), "EMPTY".to_owned(), "A".to_owned()];
        assert_eq!(
            parse_environ(environ, &names),
            [
                ("CLAUDECODE".to_owned(), "1".to_owned()),
                ("EMPTY".to_owned(), String::new()),
                ("A".to_owned(), "b=c".to_owned()),
            ]
        );
        assert!(parse_environ(environ, &[]).is_empty());
    }

    #[test]
    fn listening_from_tcp_and_tcp6() {
        assert_eq!(parse_listening(TCP), HashSet::from([9969, 22]));
        assert_eq!(parse_listening(TCP6), HashSet::from([631]));
        assert!(parse_listening("").is_empty());
        assert!(parse_listening("garbage\n 0: nocolon x 0A\n").is_empty());
    }

    fn fake_proc(root: &Path, pid: u32, stat: &str, exe: Option<&str>, cmdline: &[u8]) {
        let dir = root.join(pid.to_string());
        fs::create_dir_all(dir.join("net")).unwrap();
        fs::write(dir.join("stat"), stat).unwrap();
        fs::write(dir.join("cmdline"), cmdline).unwrap();
        if let Some(exe) = exe {
            symlink(exe, dir.join("exe")).unwrap();
        }
    }

    #[test]
    fn real_proc_reads_a_fake_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fake_proc(
            root,
            4242,
            "4242 (2.1.197) S 100 4242 4242 0 -1 0 0 0",
            Some("/home/u/.local/share/claude/versions/2.1.197 (deleted)"),
            b"2.1.197\0",
        );
        let dir = root.join("4242");
        fs::write(dir.join("comm"), "2.1.197\n").unwrap();
        fs::write(dir.join("environ"), b"CLAUDECODE=1\0SECRET=x\0").unwrap();
        fs::write(
            dir.join("status"),
            "Name:\t2.1.197\nPPid:\t100\nUid:\t1000\t1001\t1002\t1003\nGid:\t1000\t1000\t1000\t1000\n",
        )
        .unwrap();
        fs::write(dir.join("net/tcp"), TCP).unwrap();
        fs::write(dir.join("net/tcp6"), TCP6).unwrap();
        // A kernel thread: no exe, empty cmdline, no comm file.
        fake_proc(root, 2, "2 (kthreadd) S 0 0 0 0", None, b"");
        fs::create_dir_all(root.join("self")).unwrap();
        fs::write(root.join("meminfo"), "").unwrap();

        let proc = RealProc::with_root(root);
        let mut pids = proc.pids().unwrap();
        pids.sort_unstable();
        assert_eq!(pids, [2, 4242]);

        let info = proc.read(4242, &["CLAUDECODE".to_owned()]).unwrap();
        assert_eq!(
            info,
            ProcInfo {
                pid: 4242,
                ppid: 100,
                exe: Some(PathBuf::from(
                    "/home/u/.local/share/claude/versions/2.1.197"
                )),
                // The fake exe link points nowhere.
                exe_ino: None,
                exe_file: Some(dir.join("exe")),
                argv: vec!["2.1.197".to_owned()],
                comm: "2.1.197".to_owned(),
                env: vec![("CLAUDECODE".to_owned(), "1".to_owned())],
                uid: Some(1000),
            }
        );
        assert_eq!(proc.listening_ports(4242), HashSet::from([9969, 22, 631]));

        let kthread = proc.read(2, &["CLAUDECODE".to_owned()]).unwrap();
        assert_eq!(kthread.exe, None);
        assert!(kthread.argv.is_empty());
        assert_eq!(kthread.comm, "kthreadd");
        assert_eq!(kthread.ppid, 0);
        assert_eq!(kthread.uid, None, "no status file");

        assert_eq!(proc.read(9999, &[]), None);
        assert!(proc.listening_ports(9999).is_empty());
    }

    #[test]
    fn real_proc_on_this_process() {
        // /proc is there on every Linux machine the tests run on.
        let proc = RealProc::new();
        let me = std::process::id();
        assert!(proc.pids().unwrap().contains(&me));
        let info = proc.read(me, &["PATH".to_owned()]).unwrap();
        assert_eq!(info.pid, me);
        assert!(info.exe.is_some());
        assert!(!info.argv.is_empty());
        assert!(info.env.iter().all(|(name, _)| name == "PATH"));
        // SAFETY: getuid has no preconditions and cannot fail.
        assert_eq!(info.uid, Some(unsafe { libc::getuid() }));
    }

    /// The program's inode number, as the exec program reads it in the
    /// kernel, from the real /proc.
    #[test]
    fn reads_the_inode_number_of_the_program_a_process_runs() {
        use std::os::unix::fs::MetadataExt;
        let me = std::env::current_exe().unwrap();
        let ino = fs::metadata(me).unwrap().ino();
        let proc = RealProc::with_root(Path::new("/proc"));
        assert_eq!(proc.exe_ino(std::process::id()), Some(ino));
        assert_eq!(
            proc.read(std::process::id(), &[]).unwrap().exe_ino,
            Some(ino)
        );
    }
}
