//! Kernel timestamps as wall-clock time.
//!
//! The kernel stamps connections with `bpf_ktime_get_ns()`, which is
//! CLOCK_MONOTONIC: it stops while the machine is suspended, and
//! CLOCK_REALTIME (like CLOCK_BOOTTIME) does not. Every suspend therefore
//! widens the gap between them, and a wall time computed from a monotonic
//! stamp with a gap measured once, at start-up, falls behind by the length
//! of every suspend since. So the gap is measured again at each conversion,
//! and stamps are converted when they are first seen: a connection's start
//! at its open event, its end at its close event, milliseconds after the
//! kernel took them. A conversion is wrong only if the machine slept in
//! between.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

/// The two clocks a conversion reads; the system's, or a fake in tests.
pub trait Clocks: Send + Sync {
    /// CLOCK_REALTIME.
    fn realtime(&self) -> SystemTime;
    /// CLOCK_MONOTONIC in ns, the clock of `bpf_ktime_get_ns()`.
    fn monotonic_ns(&self) -> u64;
}

/// The machine's clocks.
pub struct SystemClocks;

impl Clocks for SystemClocks {
    fn realtime(&self) -> SystemTime {
        SystemTime::now()
    }

    fn monotonic_ns(&self) -> u64 {
        monotonic_ns()
    }
}

/// Converts monotonic stamps to wall-clock time with the gap between the
/// clocks as it is now.
#[derive(Clone)]
pub struct Clock(Arc<dyn Clocks>);

impl Clock {
    pub fn new(clocks: Arc<dyn Clocks>) -> Self {
        Self(clocks)
    }

    /// The wall-clock time now.
    pub fn now(&self) -> SystemTime {
        self.0.realtime()
    }

    /// CLOCK_MONOTONIC now, in ns.
    pub fn monotonic_ns(&self) -> u64 {
        self.0.monotonic_ns()
    }

    /// The wall-clock time of monotonic stamp `ktime_ns`, which should be
    /// recent (see the module comment).
    pub fn wall(&self, ktime_ns: u64) -> SystemTime {
        let (now, mono) = (self.0.realtime(), self.0.monotonic_ns());
        if ktime_ns <= mono {
            now - Duration::from_nanos(mono - ktime_ns)
        } else {
            now + Duration::from_nanos(ktime_ns - mono)
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new(Arc::new(SystemClocks))
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// RFC 3339 in UTC with milliseconds, as the connection log writes times.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns()`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
pub mod fake {
    //! A machine's clocks that a test moves by hand, suspends included.

    use std::{
        sync::{Arc, Mutex},
        time::{Duration, SystemTime},
    };

    use super::{Clock, Clocks};

    #[derive(Debug)]
    struct Now {
        realtime: SystemTime,
        monotonic_ns: u64,
        boottime_ns: u64,
    }

    #[derive(Debug, Clone)]
    pub struct FakeClocks(Arc<Mutex<Now>>);

    impl FakeClocks {
        /// Booted `up` ago (monotonic = boot time = `up`), wall clock at `wall`.
        pub fn new(wall: SystemTime, up: Duration) -> Self {
            Self(Arc::new(Mutex::new(Now {
                realtime: wall,
                monotonic_ns: up.as_nanos() as u64,
                boottime_ns: up.as_nanos() as u64,
            })))
        }

        pub fn clock(&self) -> Clock {
            Clock::new(Arc::new(self.clone()))
        }

        /// The machine runs for `d`: every clock moves.
        pub fn run(&self, d: Duration) {
            let mut now = self.0.lock().unwrap();
            now.realtime += d;
            now.monotonic_ns += d.as_nanos() as u64;
            now.boottime_ns += d.as_nanos() as u64;
        }

        /// The machine sleeps for `d`: CLOCK_REALTIME and CLOCK_BOOTTIME
        /// move on, CLOCK_MONOTONIC does not.
        pub fn suspend(&self, d: Duration) {
            let mut now = self.0.lock().unwrap();
            now.realtime += d;
            now.boottime_ns += d.as_nanos() as u64;
        }

        /// CLOCK_BOOTTIME minus CLOCK_MONOTONIC: the time spent suspended.
        pub fn slept(&self) -> Duration {
            let now = self.0.lock().unwrap();
            Duration::from_nanos(now.boottime_ns - now.monotonic_ns)
        }

        pub fn monotonic_ns(&self) -> u64 {
            self.0.lock().unwrap().monotonic_ns
        }
    }

    impl Clocks for FakeClocks {
        fn realtime(&self) -> SystemTime {
            self.0.lock().unwrap().realtime
        }
        fn monotonic_ns(&self) -> u64 {
            self.0.lock().unwrap().monotonic_ns
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{fake::FakeClocks, *};

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_stamp_converted_after_a_suspend_is_still_right() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let clocks = FakeClocks::new(t0, Duration::from_secs(100));
        let clock = clocks.clock();
        // Taken once at start-up, as agentmon used to.
        let gap_at_start = t0 - Duration::from_secs(100);
        clocks.run(Duration::from_secs(10));
        clocks.suspend(8 * HOUR);
        clocks.run(Duration::from_secs(5));
        assert_eq!(clocks.slept(), 8 * HOUR, "boot and monotonic time diverged");
        // A stamp the kernel took a millisecond ago.
        let stamp = clocks.monotonic_ns() - 1_000_000;
        let want = t0 + Duration::from_secs(15) + 8 * HOUR - Duration::from_millis(1);
        assert_eq!(clock.wall(stamp), want);
        assert_eq!(
            want.duration_since(gap_at_start + Duration::from_nanos(stamp))
                .unwrap(),
            8 * HOUR,
            "the old conversion was a whole suspend behind"
        );
        assert_eq!(rfc3339(clock.wall(stamp)), "2027-01-15T16:00:14.999Z");
    }
}
