//! Which connections our ports should have, and making them: the auto-connect rules, plus a memory of
//! every connection our ports had (made by the rules, by the user with `jack_connect`, by a patchbay),
//! restored when the server comes back or when the other end's port reappears.
//!
//! A connection is forgotten only when it is broken while both ends still exist (someone disconnected
//! it on purpose). When its other end goes away (that client quit, the server died), JACK reports a
//! disconnect first and unregisters the port just after, so a disconnect is judged only after
//! [`SETTLE`]: if the other port is gone by then, the connection is kept for when it returns.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ::jack::{Client, PortFlags};
use crossbeam_channel::Sender;
use tracing::warn;

use super::glob;
use super::ConnectRule;
use crate::backend::BackendEvent;

/// How long a disconnect waits before it counts as deliberate.
const SETTLE: Duration = Duration::from_millis(300);
/// How long a failed connect is retried before it is reported. Clients register their ports before
/// they activate, and JACK refuses connections to an inactive client's ports.
const RETRY_FOR: Duration = Duration::from_secs(5);

/// JACK's port type names (`jack_sys`'s constants are statics, so not usable in a `const`).
pub(crate) const AUDIO_TYPE: &str = "32 bit float mono audio";
pub(crate) const MIDI_TYPE: &str = "8 bit raw midi";

/// One of our ports, as the rules see it.
#[derive(Clone, Debug)]
pub(crate) struct OwnPort {
    pub(crate) short: String,
    pub(crate) is_output: bool,
    pub(crate) port_type: &'static str,
}

pub(crate) struct Links {
    ports: Vec<OwnPort>,
    rules: Vec<ConnectRule>,
    /// (our port's short name, the other port's full name).
    wanted: BTreeSet<(String, String)>,
    pending: Vec<((String, String), Instant)>,
    /// Connects that failed: (our port index, other port, give up at, first error).
    retry: Vec<(usize, String, Instant, String)>,
    events: Sender<BackendEvent>,
}

impl Links {
    pub(crate) fn new(ports: Vec<OwnPort>, rules: Vec<ConnectRule>, events: Sender<BackendEvent>) -> Self {
        Self { ports, rules, wanted: BTreeSet::new(), pending: Vec::new(), retry: Vec::new(), events }
    }

    /// After (re)connecting: every rule against every existing port, then every remembered connection.
    pub(crate) fn apply_all(&mut self, client: &Client, own_name: &str) {
        self.retry.clear();
        let prefix = format!("{own_name}:");
        let mut todo = Vec::new();
        for rule in &self.rules {
            let Some(own) = self.ports.iter().position(|p| p.short == rule.port) else { continue };
            let p = &self.ports[own];
            let flags = if p.is_output { PortFlags::IS_INPUT } else { PortFlags::IS_OUTPUT };
            for other in client.ports(None, Some(p.port_type), flags) {
                if !other.starts_with(&prefix) && rule.patterns.iter().any(|p| glob::matches(p, &other)) {
                    todo.push((own, other));
                }
            }
        }
        for (short, other) in &self.wanted {
            if let Some(own) = self.ports.iter().position(|p| p.short == *short) {
                if client.port_by_name(other).is_some() {
                    todo.push((own, other.clone()));
                }
            }
        }
        for (own, other) in todo {
            self.connect(client, own_name, own, other);
        }
    }

    /// Another client's port appeared: the rules that match it, and connections it used to have.
    pub(crate) fn port_appeared(
        &mut self,
        client: &Client,
        own_name: &str,
        name: &str,
        is_input: bool,
        port_type: &str,
    ) {
        for own in 0..self.ports.len() {
            let p = &self.ports[own];
            if p.is_output != is_input || p.port_type != port_type {
                continue;
            }
            let by_rule =
                self.rules.iter().any(|r| r.port == p.short && r.patterns.iter().any(|pat| glob::matches(pat, name)));
            let remembered = self.wanted.contains(&(p.short.clone(), name.to_string()));
            if by_rule || remembered {
                self.connect(client, own_name, own, name.to_string());
            }
        }
    }

    /// Retries failed connects; reports the ones still failing after [`RETRY_FOR`] (or whose other
    /// port went away: those are dropped quietly).
    pub(crate) fn retry(&mut self, client: &Client, own_name: &str) {
        let now = Instant::now();
        for (own, other, until, _) in std::mem::take(&mut self.retry) {
            if client.port_by_name(&other).is_none() {
                continue;
            }
            match self.try_connect(client, own_name, own, &other) {
                Ok(()) => {}
                Err(e) if now < until => self.retry.push((own, other, until, e)),
                Err(e) => {
                    let msg = format!("{e} (still failing after {} s)", RETRY_FOR.as_secs());
                    warn!("{msg}");
                    let _ = self.events.send(BackendEvent::Warning(msg));
                }
            }
        }
    }

    /// JACK reported a connection change involving one of our ports (full names, source first).
    pub(crate) fn connection(&mut self, own_name: &str, source: &str, destination: &str, connected: bool) {
        let Some(key) = self.key(own_name, source, destination) else { return };
        self.pending.retain(|(k, _)| *k != key);
        if connected {
            self.wanted.insert(key);
        } else {
            self.pending.push((key, Instant::now()));
        }
    }

    /// Judges disconnects older than [`SETTLE`]: forgotten if the other port still exists (someone
    /// disconnected it), kept if it went away. Without a client (server gone) all are kept.
    pub(crate) fn settle(&mut self, client: Option<&Client>) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.pending.len() {
            if now.duration_since(self.pending[i].1) < SETTLE && client.is_some() {
                i += 1;
                continue;
            }
            let (key, _) = self.pending.swap_remove(i);
            if let Some(client) = client {
                if client.port_by_name(&key.1).is_some() {
                    self.wanted.remove(&key);
                }
            }
        }
    }

    fn key(&self, own_name: &str, source: &str, destination: &str) -> Option<(String, String)> {
        let short_of = |full: &str| {
            let short = full.strip_prefix(own_name)?.strip_prefix(':')?;
            self.ports.iter().any(|p| p.short == short).then(|| short.to_string())
        };
        if let Some(short) = short_of(source) {
            Some((short, destination.to_string()))
        } else {
            short_of(destination).map(|short| (short, source.to_string()))
        }
    }

    /// Connects now, or queues a retry.
    fn connect(&mut self, client: &Client, own_name: &str, own: usize, other: String) {
        if let Err(e) = self.try_connect(client, own_name, own, &other) {
            self.retry.retain(|(o, x, _, _)| !(*o == own && *x == other));
            self.retry.push((own, other, Instant::now() + RETRY_FOR, e));
        }
    }

    fn try_connect(&self, client: &Client, own_name: &str, own: usize, other: &str) -> Result<(), String> {
        let own = &self.ports[own];
        let ours = format!("{own_name}:{}", own.short);
        let (source, destination) = if own.is_output { (ours.as_str(), other) } else { (other, ours.as_str()) };
        match client.connect_ports_by_name(source, destination) {
            Ok(()) | Err(::jack::Error::PortAlreadyConnected(..)) => Ok(()),
            Err(e) => Err(format!("could not connect JACK ports {source} -> {destination}: {e}")),
        }
    }
}
