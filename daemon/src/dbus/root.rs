//! `org.ballast.Daemon1` at `/org/ballast/Daemon1`: status, nodes, parameters, bypass, graph
//! transactions (one per client, keyed by its unique bus name), reload, presets, meters.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{interface, OwnedObjectPath, OwnedVariant, Str};

use super::{
    node_path, Error, Notification, Shared, Subscription, MAX_TRANSACTION_OPS, METER_RATES_HZ, MODEL_REPLY_TIMEOUT,
};
use crate::control_api::{Answer, BandSettings, GraphOp, NodeMeterValues, Request};

/// The root object.
pub struct Daemon {
    pub(crate) shared: Arc<Shared>,
}

/// The caller's unique bus name (every call through a bus has one).
fn sender(hdr: &Header<'_>) -> Result<String, Error> {
    hdr.sender().map(|s| s.to_string()).ok_or_else(|| Error::Failed("the call has no sender".into()))
}

fn unexpected(a: Answer) -> Error {
    Error::Failed(format!("unexpected answer from the control thread: {a:?}"))
}

fn models_variant(models: &[crate::control_api::ModelStatus]) -> Result<OwnedVariant, Error> {
    let map: HashMap<String, (String, String)> =
        models.iter().map(|m| (m.name.clone(), (m.state.clone(), m.detail.clone()))).collect();
    OwnedVariant::try_from(zbus::Variant::from(map)).map_err(|e| Error::Failed(e.to_string()))
}

fn s(v: &str) -> OwnedVariant {
    OwnedVariant::from(Str::from(v.to_string()))
}

/// A band's settings as `a{sd}`, keyed as a `compressor` names them.
fn band_map(b: &BandSettings) -> HashMap<String, f64> {
    b.entries().iter().map(|&(k, v)| (k.to_string(), v)).collect()
}

/// Meter readings as `a{sa{sd}}`: node → meter key → value.
pub(crate) fn meter_map(all: Vec<NodeMeterValues>) -> HashMap<String, HashMap<String, f64>> {
    all.into_iter().map(|m| (m.node, m.values.into_iter().collect())).collect()
}

impl Daemon {
    fn with_transaction<T>(
        &self,
        hdr: &Header<'_>,
        f: impl FnOnce(&mut Vec<GraphOp>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let who = sender(hdr)?;
        let mut all = self.shared.transactions.lock().unwrap_or_else(|e| e.into_inner());
        let ops = all
            .get_mut(&who)
            .ok_or_else(|| Error::Failed("no transaction open for this connection: call Begin first".into()))?;
        f(ops)
    }

    fn push(&self, hdr: &Header<'_>, op: GraphOp) -> Result<(), Error> {
        self.with_transaction(hdr, |ops| {
            if ops.len() >= MAX_TRANSACTION_OPS {
                return Err(Error::Busy(format!(
                    "a transaction holds at most {MAX_TRANSACTION_OPS} operations; commit this one and start another"
                )));
            }
            ops.push(op);
            Ok(())
        })
    }
}

#[interface(name = "org.ballast.Daemon1")]
impl Daemon {
    /// The daemon's state: backend (s), sample_rate_hz (u), block_size (u), latency_samples (t: backend
    /// plus graph), graph_latency_samples (t), latency_ms (d), dsp_load_percent (d), xruns (t),
    /// uptime_s (d), version (s), nodes (u), models (a{s(ss)}: model name → (state, detail); state is
    /// `loading`, `ready` or `unavailable`, detail the file and runtime when ready, the reason and
    /// where the daemon looked when unavailable).
    // Until the audio backend runs (JACK not connected yet) the block size is unknown: block_size,
    // latency_samples and latency_ms are then left out rather than reported as a wrong 0 (documented in
    // daemon/dbus/README.md; a plain comment keeps the committed introspection XML as it was).
    #[zbus(out_args("status"))]
    async fn status(&self) -> Result<HashMap<String, OwnedVariant>, Error> {
        let Answer::Status(st) = self.shared.ask(Request::Status).await? else {
            return Err(Error::Failed("unexpected answer to Status".into()));
        };
        let i = &st.info;
        let mut map = HashMap::from([
            ("backend".to_string(), s(&i.backend)),
            ("sample_rate_hz".to_string(), OwnedVariant::from(i.sample_rate_hz)),
            ("graph_latency_samples".to_string(), OwnedVariant::from(st.graph_latency_samples)),
            ("dsp_load_percent".to_string(), OwnedVariant::from(i.dsp_load_percent)),
            ("xruns".to_string(), OwnedVariant::from(i.xruns)),
            ("uptime_s".to_string(), OwnedVariant::from(i.uptime_s)),
            ("version".to_string(), s(&i.version)),
            ("nodes".to_string(), OwnedVariant::from(st.nodes as u32)),
            ("models".to_string(), models_variant(&st.models)?),
        ]);
        // The backend's latency is a period (or the ALSA buffer): unknown with the block size.
        if i.block_size > 0 {
            let total = i.backend_latency_samples + st.graph_latency_samples;
            let ms = if i.sample_rate_hz > 0 { total as f64 * 1000.0 / i.sample_rate_hz as f64 } else { 0.0 };
            map.insert("block_size".to_string(), OwnedVariant::from(i.block_size));
            map.insert("latency_samples".to_string(), OwnedVariant::from(total));
            map.insert("latency_ms".to_string(), OwnedVariant::from(ms));
        }
        Ok(map)
    }

    /// Estimates, from a (dry, wet) pair of WAV files the daemon can read (the wet one the dry one
    /// processed by a compressor, same rate, width and length), the settings of `node` (a compressor,
    /// or a multiband split at its own crossovers) and applies them as one transaction. The daemon
    /// keeps serving other calls while the model runs. Returns the parameters set (key → value, as
    /// `Get` names them). Emits `ParamChanged` for each. Errors: `ModelUnavailable` (with the reason),
    /// `UnknownNode`, `WrongKind`, `InvalidInput`, `Busy` (too many estimates queued).
    #[zbus(out_args("applied"))]
    async fn learn(&self, node: String, dry: String, wet: String) -> Result<HashMap<String, f64>, Error> {
        match self.shared.ask_within(Request::Learn { node: node.clone(), dry, wet }, MODEL_REPLY_TIMEOUT).await? {
            Answer::Estimated(e) => {
                for (param, value) in &e.applied {
                    self.shared.note(Notification::ParamChanged {
                        node: node.clone(),
                        param: param.clone(),
                        value: *value,
                    });
                }
                Ok(e.applied.into_iter().collect())
            }
            a => Err(unexpected(a)),
        }
    }

    /// Estimates the compressor settings per band between `crossovers_hz` (empty: one band) from a
    /// (dry, wet) pair of WAV files, without applying them. Returns one map per band, low to high:
    /// threshold_db, ratio, attack_ms, release_ms, makeup_db, knee_db.
    #[zbus(out_args("bands"))]
    async fn estimate(
        &self,
        dry: String,
        wet: String,
        crossovers_hz: Vec<f64>,
    ) -> Result<Vec<HashMap<String, f64>>, Error> {
        match self.shared.ask_within(Request::Estimate { dry, wet, crossovers_hz }, MODEL_REPLY_TIMEOUT).await? {
            Answer::Estimated(e) => Ok(e.bands.iter().map(band_map).collect()),
            a => Err(unexpected(a)),
        }
    }

    /// Every node: (name, kind, object path, channels, bands, bypassed).
    #[allow(clippy::type_complexity)]
    #[zbus(out_args("nodes"))]
    async fn list_nodes(&self) -> Result<Vec<(String, String, OwnedObjectPath, u32, u32, bool)>, Error> {
        let Answer::Nodes(nodes) = self.shared.ask(Request::ListNodes).await? else {
            return Err(Error::Failed("unexpected answer to ListNodes".into()));
        };
        nodes
            .into_iter()
            .map(|n| {
                let path = OwnedObjectPath::try_from(node_path(&n.name)).map_err(Error::ZBus)?;
                Ok((n.name, n.kind, path, n.channels, n.bands, n.bypassed))
            })
            .collect()
    }

    /// A parameter's value (`param`: a key such as `threshold_db`, per band `band2.threshold_db`).
    #[zbus(out_args("value"))]
    async fn get(&self, node: &str, param: &str) -> Result<f64, Error> {
        match self.shared.ask(Request::Get { node: node.into(), param: param.into() }).await? {
            Answer::Value(v) => Ok(v),
            a => Err(unexpected(a)),
        }
    }

    /// Sets a parameter, validated against its descriptor; returns the value in effect. Emits
    /// `ParamChanged`.
    #[zbus(out_args("value"))]
    async fn set(&self, node: &str, param: &str, value: f64) -> Result<f64, Error> {
        match self.shared.ask(Request::Set { node: node.into(), param: param.into(), value }).await? {
            Answer::Value(v) => {
                self.shared.note(Notification::ParamChanged { node: node.into(), param: param.into(), value: v });
                Ok(v)
            }
            a => Err(unexpected(a)),
        }
    }

    /// Crossfades a node to its (latency-aligned) input, or back.
    async fn bypass(&self, node: &str, on: bool) -> Result<(), Error> {
        self.shared.ask(Request::Bypass { node: node.into(), on }).await?;
        self.shared.note(Notification::BypassChanged { node: node.into() });
        Ok(())
    }

    /// Opens a graph transaction for this connection (one at a time; dropped if the client leaves).
    async fn begin(&self, #[zbus(header)] hdr: Header<'_>) -> Result<(), Error> {
        let who = sender(&hdr)?;
        let mut all = self.shared.transactions.lock().unwrap_or_else(|e| e.into_inner());
        if all.contains_key(&who) {
            return Err(Error::Busy("a transaction is already open for this connection: Commit or Abort it".into()));
        }
        all.insert(who, Vec::new());
        Ok(())
    }

    /// Adds a node in the open transaction. `params`: key → value; `channels` 0 = as the config infers
    /// it; `bands` 0 = none (a multiband needs 2..6).
    async fn add_node(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        name: String,
        kind: String,
        params: HashMap<String, f64>,
        channels: u32,
        bands: u32,
    ) -> Result<(), Error> {
        let mut params: Vec<(String, f64)> = params.into_iter().collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let op = GraphOp::AddNode {
            name,
            kind,
            params,
            channels: (channels > 0).then_some(channels),
            bands: (bands > 0).then_some(bands),
        };
        self.push(&hdr, op)
    }

    /// Removes a node (and its links) in the open transaction.
    async fn remove_node(&self, #[zbus(header)] hdr: Header<'_>, name: String) -> Result<(), Error> {
        self.push(&hdr, GraphOp::RemoveNode { name })
    }

    /// Links `from` to `to` in the open transaction (as in the config: `node`, `node:out_2`, `in`,
    /// `out`, `in:PORT`, `out:PORT`).
    async fn connect(&self, #[zbus(header)] hdr: Header<'_>, from: String, to: String) -> Result<(), Error> {
        self.push(&hdr, GraphOp::Connect { from, to })
    }

    /// Removes the links from `from` to `to` in the open transaction.
    async fn disconnect(&self, #[zbus(header)] hdr: Header<'_>, from: String, to: String) -> Result<(), Error> {
        self.push(&hdr, GraphOp::Disconnect { from, to })
    }

    /// Applies the open transaction atomically (one swap on the RT side; surviving nodes keep their
    /// state) and closes it, applied or not. Returns kept (u), inserted (u), removed (u) and
    /// latency_samples (t). Emits `GraphChanged`.
    #[zbus(out_args("report"))]
    async fn commit(&self, #[zbus(header)] hdr: Header<'_>) -> Result<HashMap<String, OwnedVariant>, Error> {
        let who = sender(&hdr)?;
        let ops = self
            .shared
            .transactions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&who)
            .ok_or_else(|| Error::Failed("no transaction open for this connection: call Begin first".into()))?;
        match self.shared.ask(Request::Commit { ops }).await? {
            Answer::Applied { kept, inserted, removed, latency_samples } => {
                self.shared.note(Notification::Sync { announce: true });
                Ok(HashMap::from([
                    ("kept".to_string(), OwnedVariant::from(kept as u32)),
                    ("inserted".to_string(), OwnedVariant::from(inserted as u32)),
                    ("removed".to_string(), OwnedVariant::from(removed as u32)),
                    ("latency_samples".to_string(), OwnedVariant::from(latency_samples)),
                ]))
            }
            a => Err(unexpected(a)),
        }
    }

    /// Drops the open transaction.
    async fn abort(&self, #[zbus(header)] hdr: Header<'_>) -> Result<(), Error> {
        let who = sender(&hdr)?;
        match self.shared.transactions.lock().unwrap_or_else(|e| e.into_inner()).remove(&who) {
            Some(_) => Ok(()),
            None => Err(Error::Failed("no transaction open for this connection".into())),
        }
    }

    /// Re-reads the config and applies the difference (as SIGHUP does). Emits `GraphChanged`.
    async fn reload(&self) -> Result<(), Error> {
        self.shared.ask(Request::Reload).await?;
        self.shared.note(Notification::Sync { announce: true });
        Ok(())
    }

    /// Saves the running graph, parameters and bypasses as preset `name` (`[A-Za-z0-9_.-]{1,64}`, not
    /// starting with `.`).
    async fn preset_save(&self, name: String) -> Result<(), Error> {
        self.shared.ask(Request::PresetSave { name }).await.map(|_| ())
    }

    /// Applies preset `name` as one transaction. Emits `GraphChanged`.
    async fn preset_load(&self, name: String) -> Result<(), Error> {
        self.shared.ask(Request::PresetLoad { name }).await?;
        self.shared.note(Notification::Sync { announce: true });
        Ok(())
    }

    /// The stored presets' names, sorted.
    #[zbus(out_args("names"))]
    async fn preset_list(&self) -> Result<Vec<String>, Error> {
        match self.shared.ask(Request::PresetList).await? {
            Answer::Presets(p) => Ok(p),
            a => Err(unexpected(a)),
        }
    }

    async fn preset_delete(&self, name: String) -> Result<(), Error> {
        self.shared.ask(Request::PresetDelete { name }).await.map(|_| ())
    }

    /// Every node's meters now: node → meter key (per band `band2.gain_reduction_db`) → value (NaN
    /// until the node has run).
    #[zbus(out_args("meters"))]
    async fn meters(&self) -> Result<HashMap<String, HashMap<String, f64>>, Error> {
        match self.shared.ask(Request::Meters).await? {
            Answer::Meters(m) => Ok(meter_map(m)),
            a => Err(unexpected(a)),
        }
    }

    /// Sends this connection the `Meters` signal `rate_hz` times a second (0.1..60) until it calls
    /// `UnsubscribeMeters` or leaves. With no subscriber, no meter traffic at all.
    async fn subscribe_meters(&self, #[zbus(header)] hdr: Header<'_>, rate_hz: f64) -> Result<(), Error> {
        if !METER_RATES_HZ.contains(&rate_hz) {
            return Err(Error::OutOfRange(format!(
                "rate_hz = {rate_hz} is out of range {}..{} (Hz)",
                METER_RATES_HZ.start(),
                METER_RATES_HZ.end()
            )));
        }
        let who = sender(&hdr)?;
        let period = Duration::from_secs_f64(1.0 / rate_hz);
        self.shared
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(who, Subscription { period, due: Instant::now() });
        self.shared.note(Notification::Wake);
        Ok(())
    }

    async fn unsubscribe_meters(&self, #[zbus(header)] hdr: Header<'_>) -> Result<(), Error> {
        let who = sender(&hdr)?;
        match self.shared.subscriptions.lock().unwrap_or_else(|e| e.into_inner()).remove(&who) {
            Some(_) => Ok(()),
            None => Err(Error::Failed("this connection has no meter subscription".into())),
        }
    }

    /// The graph changed (a commit, a preset, a reload): re-read `ListNodes`.
    #[zbus(signal)]
    async fn graph_changed(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;

    /// A parameter changed, by any client or the daemon itself.
    #[zbus(signal)]
    async fn param_changed(emitter: &SignalEmitter<'_>, node: &str, param: &str, value: f64) -> zbus::Result<()>;

    /// The backend missed deadlines; `count` is the total since start.
    #[zbus(signal)]
    async fn xrun(emitter: &SignalEmitter<'_>, count: u64) -> zbus::Result<()>;

    /// Meter readings, sent only to subscribed connections: node → meter key → value.
    #[zbus(signal)]
    async fn meters_update(
        emitter: &SignalEmitter<'_>,
        values: HashMap<String, HashMap<String, f64>>,
    ) -> zbus::Result<()>;
}
