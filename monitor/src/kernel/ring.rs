//! Reading the ring buffer of kernel events.

use std::{os::fd::AsRawFd, time::Duration};

use aya::maps::{MapData, RingBuf};
use tokio::io::{Interest, unix::AsyncFd};
use tracing::info;

use crate::events::{Event, decode};

/// How often the ring buffer is read when nothing woke us (see the kernel's
/// `maps::deferred`): the most an event of that kind waits.
pub const DRAIN_EVERY: Duration = Duration::from_millis(10);

/// The kernel's event ring, as [`super::Kernel::take_events`] hands it out.
pub type Events = RingBuf<MapData>;

/// Reads kernel events until the ring buffer fails, handing each batch to
/// `on_batch` with the number of records that could not be decoded.
pub async fn read_events(
    ring: RingBuf<MapData>,
    mut on_batch: impl FnMut(Vec<Event>, u64),
) -> anyhow::Result<()> {
    // SAFETY: the RingBuf owns its map fd and keeps it open, unchanged, for
    // as long as the AsyncFd owns the RingBuf.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("cannot watch the ring buffer: {e}"))?;
    info!(fd = fd.get_ref().as_raw_fd(), "reading kernel events");
    let mut events = Vec::new();
    loop {
        // Deferred events (closes, payload heads) do not wake us: the tick does.
        let woken = tokio::time::timeout(DRAIN_EVERY, fd.readable_mut()).await;
        let undecoded = match woken.ok().transpose()? {
            Some(mut guard) => {
                let n = drain(guard.get_inner_mut(), &mut events);
                guard.clear_ready();
                n
            }
            None => drain(fd.get_mut(), &mut events),
        };
        if !events.is_empty() || undecoded > 0 {
            on_batch(std::mem::take(&mut events), undecoded);
        }
    }
}

/// Decodes every record waiting; returns how many could not be.
fn drain(ring: &mut RingBuf<MapData>, events: &mut Vec<Event>) -> u64 {
    let mut undecoded = 0;
    while let Some(item) = ring.next() {
        match decode(&item) {
            Some(event) => events.push(event),
            None => undecoded += 1,
        }
    }
    undecoded
}
