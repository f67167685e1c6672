//! The reclaimer: drops, off the RT thread, everything the RT side retires (old schedules, removed
//! nodes), so no `free` ever runs on the audio thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::command::Retired;
use super::meters::EngineStats;

/// The consuming end of the return ring. Call [`Reclaimer::collect`] from any non-RT thread, or
/// [`Reclaimer::spawn`] a thread that does it periodically.
pub struct Reclaimer {
    retired: rtrb::Consumer<Retired>,
    stats: Arc<EngineStats>,
}

impl Reclaimer {
    pub(crate) fn new(retired: rtrb::Consumer<Retired>, stats: Arc<EngineStats>) -> Self {
        Self { retired, stats }
    }

    /// Drops everything retired so far; returns how many objects that was.
    pub fn collect(&mut self) -> usize {
        let mut n = 0;
        while let Ok(r) = self.retired.pop() {
            drop(r);
            n += 1;
        }
        self.stats.reclaimed.fetch_add(n as u64, Ordering::Relaxed);
        n as usize
    }

    /// Runs [`Reclaimer::collect`] every `period` on a thread named `ballast-reclaim` until the
    /// handle is dropped (which collects once more and joins).
    pub fn spawn(mut self, period: Duration) -> std::io::Result<ReclaimerThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new().name("ballast-reclaim".into()).spawn(move || {
            while !flag.load(Ordering::Acquire) {
                self.collect();
                std::thread::park_timeout(period);
            }
            self.collect();
        })?;
        Ok(ReclaimerThread { stop, handle: Some(handle) })
    }
}

/// A running reclaimer thread; dropping it stops and joins the thread.
pub struct ReclaimerThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for ReclaimerThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}
