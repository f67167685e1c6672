//! Locking the daemon's memory so the RT thread never waits for a page fault.
//!
//! `mlockall(MCL_CURRENT | MCL_FUTURE)` makes every later allocation count against RLIMIT_MEMLOCK, and
//! an allocation past it then fails outright. With the 8 MiB default of an unprivileged user that would
//! turn a harmless growth of the control side into an out-of-memory error, so memory is locked only
//! where the limit cannot bite (unlimited, or root's CAP_IPC_LOCK); elsewhere ballastd warns and runs
//! unlocked.

use nix::sys::mman::{mlockall, MlockAllFlags};
use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
use tracing::{info, warn};

/// Locks current and future memory where that is safe; returns whether it did.
pub fn lock() -> bool {
    let limit = getrlimit(Resource::RLIMIT_MEMLOCK).map(|(soft, _)| soft).unwrap_or(0);
    let root = nix::unistd::geteuid().is_root();
    if !root && limit != RLIM_INFINITY {
        warn!(
            "memory not locked: the memlock limit is {} KiB; page faults may cause xruns \
             (set LimitMEMLOCK=infinity in the unit, or `@audio - memlock unlimited` in limits.conf)",
            limit / 1024
        );
        return false;
    }
    match mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE) {
        Ok(()) => {
            info!("memory locked (mlockall)");
            true
        }
        Err(e) => {
            warn!("memory not locked: mlockall failed ({e}); page faults may cause xruns");
            false
        }
    }
}
