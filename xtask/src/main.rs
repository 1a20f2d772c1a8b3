//! agentmon's developer tasks: `cargo xtask setup | build | run | test |
//! bench | fuzz | deb | install | uninstall`. Each prints how long it took; a
//! failing child's exit code is passed on.
mod bench;
mod clients;
mod cmd;
mod fuzz;
mod geoip;
mod package;
mod setup;
mod tasks;
mod testcount;

use std::ffi::OsString;
use std::process::{Command, ExitCode};
use std::time::Instant;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "agentmon build tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what this machine lacks to build and run agentmon: nightly +
    /// rust-src, bpf-linker 0.13 on the nightly's libLLVM, tracefs mount,
    /// the default GeoIP databases. With `test`, `bench` or `package`, also
    /// what those need (Debian packages, Python packages, bun). Idempotent.
    Setup {
        #[arg(value_enum)]
        purposes: Vec<setup::Purpose>,
    },
    /// Setup, then `cargo build --release` of agentmon and the test helpers.
    Build,
    /// Build, then run `agentmon run ARGS` as root (via sudo -E if needed).
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Build, then run the whole test suite serially with AGENTMON_BIN set.
    /// ARGS go to the test binaries (e.g. a test name filter).
    Test {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Build, then measure what agentmon costs the traffic and the machine:
    /// every scenario without and with agentmon, alternating (needs root;
    /// about half an hour; see BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// Run the `cargo fuzz` targets in fuzz/ (every parser of untrusted
    /// bytes) from their seed corpus, N seconds each; installs cargo-fuzz
    /// first if it is missing.
    Fuzz(fuzz::FuzzArgs),
    /// Build the Debian package target/debian/agentmon_VERSION_ARCH.deb
    /// (installs cargo-deb first if it is missing).
    Deb,
    /// Build the Debian package and install it with dpkg: binary, config,
    /// systemd unit, GeoIP data, the agentmon user (needs root or sudo).
    Install,
    /// Remove the installed package (`dpkg -r`: config and logs stay).
    Uninstall {
        /// Also remove the config, the logs, the agentmon user and the BPF
        /// pins (`dpkg --purge`).
        #[arg(long)]
        purge: bool,
    },
}

/// Seconds since `start`, e.g. "3.2 s".
fn secs(start: Instant) -> String {
    format!("{:.1} s", start.elapsed().as_secs_f64())
}

/// The cargo that runs this xtask (same toolchain), with our PATH.
fn cargo() -> Command {
    cmd::tool(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let start = Instant::now();
    let (name, result) = match &cli.task {
        Task::Setup { purposes } => ("setup", setup::setup(purposes)),
        Task::Build => ("build", tasks::build(&[setup::Purpose::Run]).map(drop)),
        Task::Run { args } => ("run", tasks::run(args)),
        Task::Test { args } => ("test", tasks::test(args)),
        Task::Bench(args) => ("bench", bench::bench(args)),
        Task::Fuzz(args) => (
            "fuzz",
            tasks::Workspace::find().and_then(|ws| fuzz::fuzz(&ws.root, args)),
        ),
        Task::Deb => ("deb", package::deb().map(drop)),
        Task::Install => ("install", package::install()),
        Task::Uninstall { purge } => ("uninstall", package::uninstall(*purge)),
    };
    match result {
        Ok(()) => {
            println!("{name} done in {}", secs(start));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            eprintln!("{name} failed after {}", secs(start));
            let code = e.downcast_ref::<cmd::Failed>().map_or(1, |f| f.code);
            ExitCode::from(u8::try_from(code).ok().filter(|&c| c != 0).unwrap_or(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_of(argv: &[&str]) -> Vec<OsString> {
        match Cli::try_parse_from(argv).unwrap().task {
            Task::Run { args } | Task::Test { args } => args,
            _ => panic!("not run or test"),
        }
    }

    #[test]
    fn passes_args_through() {
        assert_eq!(
            args_of(&["x", "run", "--", "--config", "a.toml"]),
            ["--config", "a.toml"]
        );
        assert_eq!(
            args_of(&["x", "run", "--config", "a.toml"]),
            ["--config", "a.toml"]
        );
        assert_eq!(args_of(&["x", "test", "--", "egress"]), ["egress"]);
        assert!(args_of(&["x", "test"]).is_empty());
    }
}
