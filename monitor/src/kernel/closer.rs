//! Closing uprobe links off the event path. Unregistering a perf-event
//! uprobe waits for RCU grace periods while it holds the kernel's
//! trace-event lock: about 100 ms per probe on our VM, one after another
//! whatever the number of threads (measured: 320 probes took 33 s with one
//! thread and with eight). So one thread closes them, pausing between two
//! so that an attach for a new agent process gets the lock in between.

use std::{
    sync::{
        Arc, Mutex,
        mpsc::{Receiver, Sender, channel},
    },
    thread::JoinHandle,
};

use aya::programs::uprobe::UProbeLink;
use tracing::warn;

/// Threads that close links (see above: more do not help).
const WORKERS: usize = 1;

pub struct LinkCloser {
    tx: Option<Sender<UProbeLink>>,
    workers: Vec<JoinHandle<()>>,
}

impl LinkCloser {
    pub fn new() -> Self {
        let (tx, rx) = channel::<UProbeLink>();
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..WORKERS)
            .filter_map(|i| {
                let rx = Arc::clone(&rx);
                let spawned = std::thread::Builder::new()
                    .name(format!("uprobe-close-{i}"))
                    .spawn(move || work(&rx));
                match spawned {
                    Ok(handle) => Some(handle),
                    Err(e) => {
                        warn!("cannot start a uprobe closing thread ({e})");
                        None
                    }
                }
            })
            .collect::<Vec<_>>();
        Self {
            tx: (!workers.is_empty()).then_some(tx),
            workers,
        }
    }

    /// Closes `links` in the background (inline if no thread runs).
    pub fn close(&self, links: Vec<UProbeLink>) {
        for link in links {
            match &self.tx {
                Some(tx) => {
                    // A closed channel hands the link back: drop it here.
                    if let Err(e) = tx.send(link) {
                        drop(e.0);
                    }
                }
                None => drop(link),
            }
        }
    }

    /// Waits until every link handed over so far is closed.
    pub fn finish(&mut self) {
        self.tx = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn work(rx: &Mutex<Receiver<UProbeLink>>) {
    // Closing needs no capability, and this thread starts before the
    // daemon drops its own (which a thread can do only for itself).
    if let Err(e) = crate::caps::keep_only(&[]) {
        warn!("the uprobe closing thread cannot drop its capabilities ({e})");
    }
    loop {
        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        match next {
            Ok(link) => {
                drop(link);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(_) => return,
        }
    }
}
