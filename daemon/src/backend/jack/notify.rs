//! JACK's notification thread: turns callbacks into messages for the supervisor.
//!
//! Nothing here calls back into the server (a connect or port query from inside a notification can
//! deadlock against the server waiting for this very thread); port-name look-ups (`jack_port_by_id`,
//! `jack_port_name`, flags, type) read the client's shared-memory copy of the graph and are safe here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ::jack::{Client, ClientStatus, Control, NotificationHandler, PortFlags, PortId};
use crossbeam_channel::Sender;

use crate::backend::BackendStats;
use crate::engine::EngineStats;

/// What the supervisor hears, from the JACK callbacks and from the [`JackBackend`](super::JackBackend)
/// handle. Callback messages carry the generation of the client that sent them, so messages from a
/// client already given up are ignored.
#[derive(Debug)]
pub(crate) enum Msg {
    Stop,
    /// The graph latency changed (the value is in the shared atomic).
    Latency,
    BlockSize {
        generation: u64,
        frames: usize,
    },
    SampleRate {
        generation: u64,
        rate: u32,
    },
    /// A port of another client appeared: full name, whether it is an input, its type.
    PortAppeared {
        generation: u64,
        name: String,
        is_input: bool,
        port_type: String,
    },
    /// A connection involving one of our ports was made or broken (full names, source first).
    Connection {
        generation: u64,
        source: String,
        destination: String,
        connected: bool,
    },
}

/// Set by JACK's shutdown callback; polled by the supervisor. The callback must behave like a signal
/// handler (no allocation, no blocking), hence a flag and a fixed buffer behind `try_lock`.
pub(crate) struct LostFlag {
    lost: AtomicBool,
    reason: Mutex<([u8; 160], usize)>,
}

impl Default for LostFlag {
    fn default() -> Self {
        Self { lost: AtomicBool::new(false), reason: Mutex::new(([0; 160], 0)) }
    }
}

impl LostFlag {
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    pub(crate) fn reason(&self) -> String {
        match self.reason.lock() {
            Ok(r) if r.1 > 0 => String::from_utf8_lossy(&r.0[..r.1]).into_owned(),
            _ => "the JACK server went away".to_string(),
        }
    }

    fn set(&self, reason: &str) {
        if let Ok(mut r) = self.reason.try_lock() {
            let mut n = reason.len().min(r.0.len());
            while !reason.is_char_boundary(n) {
                n -= 1;
            }
            r.0[..n].copy_from_slice(&reason.as_bytes()[..n]);
            r.1 = n;
        }
        self.lost.store(true, Ordering::Release);
    }
}

pub(crate) struct Notifier {
    pub(crate) notices: Sender<Msg>,
    pub(crate) generation: u64,
    pub(crate) stats: Arc<BackendStats>,
    pub(crate) engine_stats: Arc<EngineStats>,
    pub(crate) lost: Arc<LostFlag>,
    /// `"<our client name>:"`, to tell our ports from others.
    pub(crate) own_prefix: String,
}

impl Notifier {
    fn is_ours(&self, name: &str) -> bool {
        name.starts_with(&self.own_prefix)
    }
}

impl NotificationHandler for Notifier {
    unsafe fn shutdown(&mut self, _status: ClientStatus, reason: &str) {
        self.lost.set(reason);
    }

    fn sample_rate(&mut self, _: &Client, rate: ::jack::Frames) -> Control {
        let _ = self.notices.send(Msg::SampleRate { generation: self.generation, rate });
        Control::Continue
    }

    fn port_registration(&mut self, client: &Client, port_id: PortId, is_registered: bool) {
        if !is_registered {
            return;
        }
        let Some(port) = client.port_by_id(port_id) else { return };
        let Ok(name) = port.name() else { return };
        if self.is_ours(&name) {
            return;
        }
        let is_input = port.flags().contains(PortFlags::IS_INPUT);
        let port_type = port.port_type().unwrap_or_default();
        let _ = self.notices.send(Msg::PortAppeared { generation: self.generation, name, is_input, port_type });
    }

    fn ports_connected(&mut self, client: &Client, a: PortId, b: PortId, connected: bool) {
        let (Some(pa), Some(pb)) = (client.port_by_id(a), client.port_by_id(b)) else { return };
        let (Ok(na), Ok(nb)) = (pa.name(), pb.name()) else { return };
        if !self.is_ours(&na) && !self.is_ours(&nb) {
            return;
        }
        // JACK reports the pair in either order; keep source (an output) first.
        let (source, destination) = if pa.flags().contains(PortFlags::IS_OUTPUT) { (na, nb) } else { (nb, na) };
        let _ = self.notices.send(Msg::Connection { generation: self.generation, source, destination, connected });
    }

    fn xrun(&mut self, _: &Client) -> Control {
        self.stats.count_xrun();
        self.engine_stats.count_xrun();
        Control::Continue
    }
}
