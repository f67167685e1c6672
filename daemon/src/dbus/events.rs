//! The events thread: keeps the node objects in line with the graph, emits the signals (`GraphChanged`,
//! `ParamChanged`, `Xrun`, `MetersUpdate` to subscribers, `PropertiesChanged` of node objects), and once
//! a second drops the transactions and subscriptions of clients that left the bus and checks that we
//! still own the name. A plain thread: it drives each D-Bus call with `zbus::block_on`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use zbus::names::BusName;
use zbus::Connection;

use super::node::Node;
use super::root::meter_map;
use super::{node_path, Notification, Shared, BUS_NAME, ROOT_INTERFACE, ROOT_PATH};
use crate::control_api::{Answer, Request};

/// How often vanished clients are looked for.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

pub(super) fn spawn(
    conn: Connection,
    shared: Arc<Shared>,
    notes: Receiver<Notification>,
    name_lost: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("ballast-dbus".into()).spawn(move || {
        let mut ev = Events { conn, shared, nodes: HashMap::new(), xruns: 0, name_lost };
        ev.run(notes);
    })
}

struct Events {
    conn: Connection,
    shared: Arc<Shared>,
    /// Served node objects: name → kind.
    nodes: HashMap<String, String>,
    /// The last xrun total signalled.
    xruns: u64,
    name_lost: Arc<AtomicBool>,
}

impl Events {
    fn run(&mut self, notes: Receiver<Notification>) {
        let mut next_housekeeping = Instant::now() + HOUSEKEEPING;
        loop {
            let wake = self.next_meter_due().map_or(next_housekeeping, |m| m.min(next_housekeeping));
            match notes.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(Notification::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(n) => self.on(n),
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            self.send_meters(now);
            if now >= next_housekeeping {
                self.housekeeping();
                next_housekeeping = now + HOUSEKEEPING;
            }
        }
    }

    fn on(&mut self, n: Notification) {
        let result = match n {
            Notification::Sync { announce } => self.sync(announce),
            Notification::ParamChanged { node, param, value } => self.param_changed(&node, &param, value),
            Notification::BypassChanged { node } => self.bypass_changed(&node),
            Notification::Xruns(total) if total > self.xruns => {
                self.xruns = total;
                self.emit(None, "Xrun", &(total,))
            }
            Notification::Xruns(_) | Notification::Wake | Notification::Stop => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!("D-Bus: {e}");
        }
    }

    fn emit<B>(&self, to: Option<&str>, member: &str, body: &B) -> zbus::Result<()>
    where
        B: serde::Serialize + zbus::DynamicType,
    {
        let to = to.map(BusName::try_from).transpose()?;
        zbus::block_on(self.conn.emit_signal(to, ROOT_PATH, ROOT_INTERFACE, member, body))
    }

    /// Adds and removes node objects to match `ListNodes`.
    fn sync(&mut self, announce: bool) -> zbus::Result<()> {
        let nodes = match self.shared.ask_blocking(Request::ListNodes) {
            Ok(Answer::Nodes(n)) => n,
            Ok(_) => return Ok(()),
            Err(e) => return Err(zbus::Error::Failure(format!("cannot list the nodes: {e:?}"))),
        };
        let server = self.conn.object_server();
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|(name, kind)| !nodes.iter().any(|n| &n.name == *name && &n.kind == *kind))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            zbus::block_on(server.remove::<Node, _>(node_path(&name).as_str()))?;
            self.nodes.remove(&name);
        }
        for n in nodes {
            if self.nodes.contains_key(&n.name) {
                if announce {
                    // A kept node's parameters may have changed with the graph (a preset).
                    if let Err(e) = self.node_params_changed(&n.name) {
                        tracing::debug!("D-Bus: Params of {}: {e}", n.name);
                    }
                }
                continue;
            }
            let node = Node { name: n.name.clone(), kind: n.kind.clone(), shared: self.shared.clone() };
            zbus::block_on(server.at(node_path(&n.name).as_str(), node))?;
            self.nodes.insert(n.name, n.kind);
        }
        if announce {
            self.emit(None, "GraphChanged", &())?;
        }
        Ok(())
    }

    fn param_changed(&self, node: &str, param: &str, value: f64) -> zbus::Result<()> {
        self.emit(None, "ParamChanged", &(node, param, value))?;
        if self.nodes.contains_key(node) {
            self.node_params_changed(node)?;
        }
        Ok(())
    }

    /// PropertiesChanged for a node object's `Params`.
    fn node_params_changed(&self, node: &str) -> zbus::Result<()> {
        zbus::block_on(async {
            let iface = self.conn.object_server().interface::<_, Node>(node_path(node).as_str()).await?;
            let guard = iface.get().await;
            guard.params_changed(iface.signal_emitter()).await
        })
    }

    fn bypass_changed(&self, node: &str) -> zbus::Result<()> {
        if !self.nodes.contains_key(node) {
            return Ok(());
        }
        zbus::block_on(async {
            let iface = self.conn.object_server().interface::<_, Node>(node_path(node).as_str()).await?;
            let guard = iface.get().await;
            guard.bypassed_changed(iface.signal_emitter()).await
        })
    }

    fn next_meter_due(&self) -> Option<Instant> {
        self.shared.subscriptions.lock().unwrap_or_else(|e| e.into_inner()).values().map(|s| s.due).min()
    }

    /// Sends `MetersUpdate` to each subscriber whose period has come; reads the meters once for all.
    fn send_meters(&self, now: Instant) {
        let due: Vec<String> = {
            let mut subs = self.shared.subscriptions.lock().unwrap_or_else(|e| e.into_inner());
            subs.iter_mut()
                .filter(|(_, s)| s.due <= now)
                .map(|(who, s)| {
                    // Keep the cadence; after a stall, start again from now rather than burst.
                    s.due += s.period;
                    if s.due <= now {
                        s.due = now + s.period;
                    }
                    who.clone()
                })
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let values = match self.shared.ask_blocking(Request::Meters) {
            Ok(Answer::Meters(m)) => meter_map(m),
            _ => return,
        };
        for who in due {
            if let Err(e) = self.emit(Some(&who), "MetersUpdate", &(&values,)) {
                tracing::debug!("D-Bus: meters to {who}: {e}");
            }
        }
    }

    /// Drops what belongs to clients no longer on the bus; notices a lost name.
    fn housekeeping(&self) {
        let mut clients: Vec<String> =
            self.shared.transactions.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        clients.extend(self.shared.subscriptions.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned());
        clients.sort();
        clients.dedup();
        let conn = self.conn.clone();
        let checked = zbus::block_on(async move {
            let bus = zbus::fdo::DBusProxy::new(&conn).await?;
            let mut gone = Vec::new();
            for c in clients {
                let name = BusName::try_from(c.as_str())?;
                if !bus.name_has_owner(name).await? {
                    gone.push(c);
                }
            }
            let owner = bus.get_name_owner(BusName::try_from(BUS_NAME)?).await.ok();
            let ours = owner.is_some_and(|o| conn.unique_name().is_some_and(|u| o.as_str() == u.as_str()));
            Ok::<_, zbus::Error>((gone, ours))
        });
        match checked {
            Ok((gone, ours)) => {
                if !gone.is_empty() {
                    let mut t = self.shared.transactions.lock().unwrap_or_else(|e| e.into_inner());
                    let mut s = self.shared.subscriptions.lock().unwrap_or_else(|e| e.into_inner());
                    for g in &gone {
                        if t.remove(g).is_some() {
                            tracing::debug!("D-Bus: {g} left; its open transaction is dropped");
                        }
                        s.remove(g);
                    }
                }
                if !ours && !self.name_lost.swap(true, Ordering::Relaxed) {
                    tracing::warn!("D-Bus: {BUS_NAME} was taken over by another process (--replace)");
                }
            }
            Err(e) => tracing::debug!("D-Bus housekeeping: {e}"),
        }
    }
}
