//! The engine's home while JACK runs it: a cell the process callback borrows without locking, and
//! that outlives any one JACK client.
//!
//! Why not move the [`Engine`] into the process handler: when the server dies, the jack crate's
//! `AsyncClient` can no longer deactivate the client and drops or leaks the handler with it, and the
//! engine (graph, parameters, node state) would go too. Here the handler holds only an `Arc` of the
//! cell; the supervisor holds another, so the engine survives a dead client and the next client's
//! handler borrows the same one.
//!
//! Exclusion is one `AtomicBool` ("in use"): whoever wins `compare_exchange(false → true)` has the
//! engine until it stores `false`. The RT side only ever *tries* (it never waits: a lost race means
//! one block of silence); the supervisor waits, which is bounded by one process cycle, because the RT
//! side holds the flag only for one `Engine::process` call.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::engine::Engine;

pub(crate) struct EngineCell {
    in_use: AtomicBool,
    engine: UnsafeCell<Option<Engine>>,
}

// SAFETY: the `Option<Engine>` inside is reached only through an `EngineGuard`, and a guard exists
// only while its holder owns `in_use` (won by compare_exchange, released on drop), so at most one
// thread touches the engine at a time. `Engine` is `Send`, which is all moving access between
// threads requires.
unsafe impl Sync for EngineCell {}

impl EngineCell {
    pub(crate) fn new(engine: Engine) -> Self {
        Self { in_use: AtomicBool::new(false), engine: UnsafeCell::new(Some(engine)) }
    }

    /// RT side: the engine if nobody else holds it. Wait-free, allocation-free.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<EngineGuard<'_>> {
        self.in_use
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| EngineGuard { cell: self })
    }

    /// Control side: waits up to `timeout` for the RT side to finish its block. `None` only if a
    /// callback somehow held the engine that long (a stuck RT thread); the engine is then left alone.
    pub(crate) fn lock(&self, timeout: Duration) -> Option<EngineGuard<'_>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(g) = self.try_lock() {
                return Some(g);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Exclusive access to the engine slot; releases the flag when dropped.
pub(crate) struct EngineGuard<'a> {
    cell: &'a EngineCell,
}

impl EngineGuard<'_> {
    #[inline]
    pub(crate) fn engine(&mut self) -> &mut Option<Engine> {
        // SAFETY: this guard exists only while `in_use` is held by its creator (see `try_lock`), so no
        // other reference into the cell exists for the guard's lifetime; `&mut self` keeps this one
        // unique.
        unsafe { &mut *self.cell.engine.get() }
    }
}

impl Drop for EngineGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.cell.in_use.store(false, Ordering::Release);
    }
}
