//! JACK's latency callback, registered through `jack_sys` (the jack crate does not wrap it).
//!
//! Standard JACK semantics (jack/types.h, "JackLatencyCallback"): capture latency flows downstream,
//! so our outputs report our inputs' capture latency plus the graph's; playback latency flows
//! upstream, so our inputs report our outputs' playback latency plus the graph's. With several ports
//! on a side, the range spans all of them (smallest min, largest max).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use ::jack::jack_sys as j;

/// What the callback reads. Lives (boxed, at a fixed address) at least as long as the client whose
/// callback points at it.
pub(crate) struct LatencyContext {
    pub(crate) inputs: Vec<*mut j::jack_port_t>,
    pub(crate) outputs: Vec<*mut j::jack_port_t>,
    pub(crate) graph_frames: Arc<AtomicU32>,
}

/// Registers the callback. Must be called before the client is activated.
///
/// # Safety
/// `client` must be a valid, not yet activated client, and `ctx` must stay alive, unmoved, until the
/// client has been closed.
pub(crate) unsafe fn register(client: *mut j::jack_client_t, ctx: &LatencyContext) -> bool {
    let arg = ctx as *const LatencyContext as *mut libc::c_void;
    // SAFETY: forwarded from this function's contract.
    unsafe { j::jack_set_latency_callback(client, Some(callback), arg) == 0 }
}

unsafe extern "C" fn callback(mode: j::jack_latency_callback_mode_t, arg: *mut libc::c_void) {
    // SAFETY: `arg` is the `LatencyContext` passed to `register`, alive until the client is closed
    // (`register`'s contract); it is only read here.
    let ctx = unsafe { &*(arg as *const LatencyContext) };
    let graph = ctx.graph_frames.load(Ordering::Relaxed);
    let (from, to) =
        if mode == j::JackCaptureLatency { (&ctx.inputs, &ctx.outputs) } else { (&ctx.outputs, &ctx.inputs) };
    let mut range = j::jack_latency_range_t { min: u32::MAX, max: 0 };
    for &port in from {
        let mut r = j::jack_latency_range_t { min: 0, max: 0 };
        // SAFETY: our own registered port, valid while the client is open; `r` is a valid out-pointer.
        unsafe { j::jack_port_get_latency_range(port, mode, &mut r) };
        range.min = range.min.min(r.min);
        range.max = range.max.max(r.max);
    }
    if from.is_empty() {
        range = j::jack_latency_range_t { min: 0, max: 0 };
    }
    range.min = range.min.saturating_add(graph);
    range.max = range.max.saturating_add(graph);
    for &port in to {
        // SAFETY: as above; JACK copies the range.
        unsafe { j::jack_port_set_latency_range(port, mode, &mut range) };
    }
}
