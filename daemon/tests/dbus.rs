//! The D-Bus service on a REAL private bus (`dbus-daemon --session`, one per test, killed by a guard):
//! `dbus::serve` with a control loop that answers with a real `Answerer` over a real `Controller`,
//! whose `Engine` runs on its own thread at about real time. Exercised through zbus proxies and the
//! command-line tools (`busctl --user`, `dbus-send`) with `DBUS_SESSION_BUS_ADDRESS` set per process.

mod common;

use std::collections::HashMap;
use std::f32::consts::TAU;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ballastd::config;
use ballastd::control_api::{Answer, Answerer, StatusInfo};
use ballastd::dbus::{self, BusKind, DbusHandle, ServeError};
use ballastd::engine::{self, EngineConfig};
use ballastd::presets::PresetStore;
use common::Bus;
use crossbeam_channel::Receiver;
use futures_util::StreamExt;
use zbus::{Connection, MessageStream, OwnedObjectPath, OwnedVariant};

const RATE: f64 = 48_000.0;
const BLOCK: usize = 256;
const WAIT: Duration = Duration::from_secs(15);

/// in → meter → comp → out (stereo), the engine's input a 1 kHz sine.
const GRAPH: &str = r#"
[engine]
backend = "offline"
[ports]
audio_in = ["in_l", "in_r"]
audio_out = ["out_l", "out_r"]
[nodes.meter]
kind = "loudness_meter"
[nodes.comp]
kind = "compressor"
threshold_db = -20
[nodes."my-gain.stage"]
kind = "compressor"
[links]
chain = ["in", "meter", "comp", "my-gain.stage", "out"]
"#;

// ---------------------------------------------------------------------------------------------
// A private bus

/// A zbus connection to the private bus.
trait Connect {
    fn connect(&self) -> Connection;
}

impl Connect for Bus {
    fn connect(&self) -> Connection {
        zbus::block_on(zbus::connection::Builder::address(self.address.as_str()).build()).expect("connect")
    }
}

// ---------------------------------------------------------------------------------------------
// A daemon: control loop + engine thread

struct Daemon {
    handle: Option<DbusHandle>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Input level (dBFS peak, f32 bits) the audio thread plays.
    level_db: Arc<AtomicU32>,
    /// Blocks processed, and blocks whose output was silent though the input was not.
    blocks: Arc<AtomicU64>,
    silent_blocks: Arc<AtomicU64>,
    /// `Meters` requests the control loop answered (the events thread asks only for subscribers).
    meter_reads: Arc<AtomicU64>,
    /// The engine's counters (commands applied on the RT side).
    engine_stats: Arc<ballastd::engine::EngineStats>,
    dir: PathBuf,
}

impl Daemon {
    fn start(bus: &Bus, name: &str) -> Daemon {
        Self::try_start(bus, name, false).expect("serve")
    }

    fn try_start(bus: &Bus, name: &str, replace: bool) -> Result<Daemon, ServeError> {
        Self::try_start_at(&bus.address, name, replace)
    }

    fn try_start_at(address: &str, name: &str, replace: bool) -> Result<Daemon, ServeError> {
        let config = config::parse(GRAPH, "test.toml").expect("valid");
        let (mut controller, mut engine, reclaimer) =
            engine::new(EngineConfig { sample_rate: RATE, max_block: BLOCK, ..EngineConfig::default() });
        controller.apply(&config.graph).unwrap();
        let engine_stats = controller.stats_handle();
        let dir = std::env::temp_dir().join(format!("ballast-dbus-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let presets = PresetStore::new(dir.join("presets"));
        let stop = Arc::new(AtomicBool::new(false));
        let level_db = Arc::new(AtomicU32::new((-10.0f32).to_bits()));
        let blocks = Arc::new(AtomicU64::new(0));
        let silent_blocks = Arc::new(AtomicU64::new(0));

        let (req_tx, req_rx) = dbus::request_channel();
        let handle = dbus::serve(BusKind::Address(address.to_string()), replace, req_tx)?;

        let started = Instant::now();
        let s = stop.clone();
        let meter_reads = Arc::new(AtomicU64::new(0));
        let reads = meter_reads.clone();
        let control = std::thread::spawn(move || {
            let _reclaimer = reclaimer.spawn(Duration::from_millis(20)).unwrap();
            while !s.load(Ordering::Relaxed) {
                let Ok((req, reply)) = req_rx.recv_timeout(Duration::from_millis(50)) else { continue };
                if req == ballastd::control_api::Request::Meters {
                    reads.fetch_add(1, Ordering::Relaxed);
                }
                let status = StatusInfo {
                    backend: "test".into(),
                    sample_rate_hz: RATE as u32,
                    block_size: BLOCK as u32,
                    backend_latency_samples: BLOCK as u64,
                    dsp_load_percent: 1.5,
                    xruns: 0,
                    uptime_s: started.elapsed().as_secs_f64(),
                    version: env!("CARGO_PKG_VERSION").into(),
                };
                let answer = Answerer { controller: &mut controller, status, presets: &presets }.answer(req);
                // The service's reload: here, the config's graph again.
                let answer = match answer {
                    Ok(Answer::Reload) => controller
                        .apply(&config.graph)
                        .map(|_| Answer::Done)
                        .map_err(|e| ballastd::control_api::ApiError::InvalidGraph(e.to_string())),
                    other => other,
                };
                let _ = reply.send(answer);
            }
        });

        let (s, level, b, sb) = (stop.clone(), level_db.clone(), blocks.clone(), silent_blocks.clone());
        let audio = std::thread::spawn(move || {
            let step = TAU * 1000.0 / RATE as f32;
            let mut phase = 0.0f32;
            let mut input = vec![0.0f32; BLOCK];
            let (mut l, mut r) = (vec![0.0f32; BLOCK], vec![0.0f32; BLOCK]);
            let period = Duration::from_secs_f64(BLOCK as f64 / RATE);
            let mut next = Instant::now();
            while !s.load(Ordering::Relaxed) {
                let amp = 10f32.powf(f32::from_bits(level.load(Ordering::Relaxed)) / 20.0);
                for x in input.iter_mut() {
                    *x = amp * phase.sin();
                    phase = (phase + step) % TAU;
                }
                let mut outputs: [&mut [f32]; 2] = [&mut l, &mut r];
                engine.process(&[&input, &input], &mut outputs);
                let peak = l.iter().chain(&r).fold(0.0f32, |p, x| p.max(x.abs()));
                if b.fetch_add(1, Ordering::Relaxed) > 0 && peak < 1e-6 {
                    sb.fetch_add(1, Ordering::Relaxed);
                }
                // About real time; a late block is not made up for by a burst.
                next += period;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
        });
        Ok(Daemon {
            handle: Some(handle),
            stop,
            threads: vec![control, audio],
            level_db,
            blocks,
            silent_blocks,
            meter_reads,
            engine_stats,
            dir,
        })
    }

    fn handle(&self) -> &DbusHandle {
        self.handle.as_ref().unwrap()
    }

    fn wait_blocks(&self, n: u64) {
        let until = self.blocks.load(Ordering::Relaxed) + n;
        let t = Instant::now();
        while self.blocks.load(Ordering::Relaxed) < until {
            assert!(t.elapsed() < WAIT * 4, "the audio thread stalled");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        drop(self.handle.take());
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Client side

#[zbus::proxy(
    interface = "org.ballast.Daemon1",
    default_service = "org.ballast.Daemon1",
    default_path = "/org/ballast/Daemon1"
)]
trait Daemon1 {
    fn status(&self) -> zbus::Result<HashMap<String, OwnedVariant>>;
    #[allow(clippy::type_complexity)]
    fn list_nodes(&self) -> zbus::Result<Vec<(String, String, OwnedObjectPath, u32, u32, bool)>>;
    fn get(&self, node: &str, param: &str) -> zbus::Result<f64>;
    fn set(&self, node: &str, param: &str, value: f64) -> zbus::Result<f64>;
    fn bypass(&self, node: &str, on: bool) -> zbus::Result<()>;
    fn begin(&self) -> zbus::Result<()>;
    fn add_node(
        &self,
        name: &str,
        kind: &str,
        params: HashMap<&str, f64>,
        channels: u32,
        bands: u32,
    ) -> zbus::Result<()>;
    fn remove_node(&self, name: &str) -> zbus::Result<()>;
    fn connect(&self, from: &str, to: &str) -> zbus::Result<()>;
    fn disconnect(&self, from: &str, to: &str) -> zbus::Result<()>;
    fn commit(&self) -> zbus::Result<HashMap<String, OwnedVariant>>;
    fn abort(&self) -> zbus::Result<()>;
    fn reload(&self) -> zbus::Result<()>;
    fn preset_save(&self, name: &str) -> zbus::Result<()>;
    fn preset_load(&self, name: &str) -> zbus::Result<()>;
    fn preset_list(&self) -> zbus::Result<Vec<String>>;
    fn preset_delete(&self, name: &str) -> zbus::Result<()>;
    fn meters(&self) -> zbus::Result<HashMap<String, HashMap<String, f64>>>;
    fn subscribe_meters(&self, rate_hz: f64) -> zbus::Result<()>;
    fn unsubscribe_meters(&self) -> zbus::Result<()>;
}

#[zbus::proxy(interface = "org.ballast.Node1", default_service = "org.ballast.Daemon1", assume_defaults = false)]
trait Node1 {
    #[zbus(property)]
    fn kind(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn name(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn bypassed(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn params(&self) -> zbus::Result<HashMap<String, f64>>;
    fn describe(&self) -> zbus::Result<Vec<HashMap<String, OwnedVariant>>>;
    fn get(&self, param: &str) -> zbus::Result<f64>;
    fn set(&self, param: &str, value: f64) -> zbus::Result<f64>;
    fn bypass(&self, on: bool) -> zbus::Result<()>;
}

fn daemon_proxy(conn: &Connection) -> Daemon1Proxy<'static> {
    zbus::block_on(Daemon1Proxy::new(conn)).unwrap()
}

fn node_proxy(conn: &Connection, name: &str) -> Node1Proxy<'static> {
    zbus::block_on(async {
        Node1Proxy::builder(conn)
            .path(dbus::node_path(name))
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
    })
    .unwrap()
}

/// The D-Bus error name and message of a failed call.
fn error_of<T: std::fmt::Debug>(r: zbus::Result<T>) -> (String, String) {
    match r {
        Err(zbus::Error::MethodError(name, msg, _)) => (name.to_string(), msg.unwrap_or_default()),
        other => panic!("expected a D-Bus error, got {other:?}"),
    }
}

fn u(map: &HashMap<String, OwnedVariant>, key: &str) -> u64 {
    let v = map.get(key).unwrap_or_else(|| panic!("no {key} in {map:?}")).try_clone().unwrap();
    u64::try_from(v.clone()).or_else(|_| u32::try_from(v).map(u64::from)).unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// Signals `member` of the root interface as they arrive on `conn`, collected by a thread.
fn signals(conn: &Connection, member: &str) -> Receiver<zbus::Message> {
    matching(conn, &format!("type='signal',interface='org.ballast.Daemon1',member='{member}'"))
}

/// Messages matching `rule` as they arrive on `conn`, collected by a thread.
fn matching(conn: &Connection, rule: &str) -> Receiver<zbus::Message> {
    let rule = rule.to_string();
    let mut stream = zbus::block_on(MessageStream::for_match_rule(rule.as_str(), conn, None)).unwrap();
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        zbus::block_on(async {
            while let Some(Ok(m)) = stream.next().await {
                if tx.send(m).is_err() {
                    break;
                }
            }
        })
    });
    rx
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn node_objects(bus: &Bus) -> Vec<String> {
    let (ok, out, err) = bus.busctl(&["tree", "--list", "org.ballast.Daemon1"]);
    assert!(ok, "busctl tree: {err}");
    out.lines().filter(|l| l.starts_with("/org/ballast/Daemon1/node/")).map(str::to_string).collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn methods_signals_and_errors() {
    let bus = Bus::start();
    let d = Daemon::start(&bus, "methods");
    let a = bus.connect();
    let b = bus.connect();
    let pa = daemon_proxy(&a);
    let pb = daemon_proxy(&b);

    let st = zbus::block_on(pa.status()).unwrap();
    assert_eq!(u(&st, "sample_rate_hz"), 48_000);
    assert_eq!(u(&st, "block_size"), 256);
    assert_eq!(u(&st, "nodes"), 3);
    assert_eq!(u(&st, "latency_samples"), 256, "backend 256 + graph 0");
    for key in ["backend", "graph_latency_samples", "latency_ms", "dsp_load_percent", "xruns", "uptime_s", "version"] {
        assert!(st.contains_key(key), "Status has {key}");
    }

    let nodes = zbus::block_on(pa.list_nodes()).unwrap();
    let listed: Vec<(&str, &str, &str)> = nodes.iter().map(|n| (n.0.as_str(), n.1.as_str(), n.2.as_str())).collect();
    assert_eq!(
        listed,
        [
            ("meter", "loudness_meter", "/org/ballast/Daemon1/node/meter"),
            ("comp", "compressor", "/org/ballast/Daemon1/node/comp"),
            ("my-gain.stage", "compressor", "/org/ballast/Daemon1/node/my_2dgain_2estage"),
        ]
    );
    wait_for("node objects", || node_objects(&bus).len() == 3);

    // Set by client A: B sees ParamChanged; the node object's Params property follows.
    let changes = signals(&b, "ParamChanged");
    let props = matching(
        &b,
        "type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',\
         path='/org/ballast/Daemon1/node/comp'",
    );
    assert_eq!(zbus::block_on(pa.set("comp", "threshold_db", -31.5)).unwrap(), -31.5);
    let m = changes.recv_timeout(WAIT).expect("ParamChanged reaches the other client");
    let (node, param, value): (String, String, f64) = m.body().deserialize().unwrap();
    assert_eq!((node.as_str(), param.as_str(), value), ("comp", "threshold_db", -31.5));
    assert_eq!(zbus::block_on(pb.get("comp", "threshold_db")).unwrap(), -31.5);
    let m = props.recv_timeout(WAIT).expect("PropertiesChanged of the node object");
    let (iface, changed, _): (String, HashMap<String, OwnedVariant>, Vec<String>) = m.body().deserialize().unwrap();
    assert_eq!(iface, "org.ballast.Node1");
    let params = HashMap::<String, f64>::try_from(changed["Params"].try_clone().unwrap()).unwrap();
    assert_eq!(params["threshold_db"], -31.5);

    let comp = node_proxy(&b, "comp");
    assert_eq!(zbus::block_on(comp.kind()).unwrap(), "compressor");
    assert_eq!(zbus::block_on(comp.name()).unwrap(), "comp");
    assert_eq!(zbus::block_on(comp.params()).unwrap()["threshold_db"], -31.5);
    let described = zbus::block_on(comp.describe()).unwrap();
    let t =
        described.iter().find(|p| String::try_from(p["key"].try_clone().unwrap()).unwrap() == "threshold_db").unwrap();
    assert_eq!(String::try_from(t["unit"].try_clone().unwrap()).unwrap(), "dB");
    assert_eq!(f64::try_from(t["value"].try_clone().unwrap()).unwrap(), -31.5);
    for key in ["min", "max", "default", "scale", "doc", "choices", "boolean", "name"] {
        assert!(t.contains_key(key), "descriptor has {key}");
    }
    // Through the node object: the root's ParamChanged too.
    assert_eq!(zbus::block_on(comp.set("ratio", 4.0)).unwrap(), 4.0);
    let m = changes.recv_timeout(WAIT).expect("ParamChanged for a node-object Set");
    let (_, param, value): (String, String, f64) = m.body().deserialize().unwrap();
    assert_eq!((param.as_str(), value), ("ratio", 4.0));
    assert_eq!(zbus::block_on(comp.get("ratio")).unwrap(), 4.0);

    assert!(!zbus::block_on(comp.bypassed()).unwrap());
    zbus::block_on(pa.bypass("comp", true)).unwrap();
    assert!(zbus::block_on(comp.bypassed()).unwrap());
    zbus::block_on(comp.bypass(false)).unwrap();
    assert!(!zbus::block_on(comp.bypassed()).unwrap());

    // Every error type that a call can produce, by name, with its message.
    let cases: Vec<(&str, zbus::Result<f64>, &str)> = vec![
        ("UnknownNode", zbus::block_on(pa.get("nope", "x")), "nodes: meter, comp, my-gain.stage"),
        ("UnknownParam", zbus::block_on(pa.get("comp", "nope")), "threshold_db"),
        ("OutOfRange", zbus::block_on(pa.set("comp", "threshold_db", 1e9)), "(dB)"),
        ("OutOfRange", zbus::block_on(pa.set("comp", "threshold_db", f64::NAN)), "out of range"),
    ];
    for (want, r, text) in cases {
        let (name, msg) = error_of(r);
        assert_eq!(name, format!("org.ballast.Error.{want}"), "{msg}");
        assert!(msg.contains(text), "{want}: {msg:?} lacks {text:?}");
    }
    let (name, _) = error_of(zbus::block_on(pa.commit()));
    assert_eq!(name, "org.ballast.Error.Failed", "commit without begin");
    zbus::block_on(pa.begin()).unwrap();
    let (name, msg) = error_of(zbus::block_on(pa.begin()));
    assert_eq!(name, "org.ballast.Error.Busy", "{msg}");
    zbus::block_on(pa.connect("comp", "meter")).unwrap();
    let (name, msg) = error_of(zbus::block_on(pa.commit()));
    assert_eq!(name, "org.ballast.Error.InvalidGraph");
    assert!(msg.contains("cycle"), "{msg}");
    let (name, _) = error_of(zbus::block_on(pa.abort()));
    assert_eq!(name, "org.ballast.Error.Failed", "a failed commit closed the transaction");
    let (name, msg) = error_of(zbus::block_on(pa.preset_save("../x")));
    assert_eq!(name, "org.ballast.Error.InvalidName", "{msg}");
    let (name, _) = error_of(zbus::block_on(pa.subscribe_meters(1000.0)));
    assert_eq!(name, "org.ballast.Error.OutOfRange");

    // The same through the command-line tools.
    let (ok, out, err) = bus.busctl(&[
        "call",
        "org.ballast.Daemon1",
        "/org/ballast/Daemon1",
        "org.ballast.Daemon1",
        "Set",
        "ssd",
        "comp",
        "knee_db",
        "3",
    ]);
    assert!(ok && out.trim() == "d 3", "busctl Set: {out} {err}");
    let (ok, out, _) = bus.busctl(&[
        "get-property",
        "org.ballast.Daemon1",
        "/org/ballast/Daemon1/node/comp",
        "org.ballast.Node1",
        "Kind",
    ]);
    assert!(ok && out.trim() == "s \"compressor\"", "{out}");
    let (ok, out) = bus.dbus_send(&["/org/ballast/Daemon1", "org.ballast.Daemon1.Get", "string:comp", "string:knee"]);
    assert!(!ok && out.contains("org.ballast.Error.UnknownParam"), "{out}");
    let (ok, out) = bus.dbus_send(&["/org/ballast/Daemon1", "org.ballast.Daemon1.Bypass", "string:x", "boolean:true"]);
    assert!(!ok && out.contains("org.ballast.Error.UnknownNode"), "{out}");
    let (ok, out) = bus.dbus_send(&["/org/ballast/Daemon1", "org.ballast.Daemon1.PresetDelete", "string:a/b"]);
    assert!(!ok && out.contains("org.ballast.Error.InvalidName"), "{out}");

    // Reload: the service's own; node objects and GraphChanged follow.
    let graph = signals(&b, "GraphChanged");
    zbus::block_on(pa.reload()).unwrap();
    graph.recv_timeout(WAIT).expect("GraphChanged after Reload");

    // Xrun from the control thread's tick.
    let xruns = signals(&b, "Xrun");
    d.handle().xruns(0);
    d.handle().xruns(3);
    let m = xruns.recv_timeout(WAIT).expect("Xrun");
    assert_eq!(m.body().deserialize::<u64>().unwrap(), 3);
}

/// Half the running graph replaced in one commit while the audio thread runs: node objects follow,
/// GraphChanged is emitted, no output block goes silent, and the kept loudness meter keeps integrating
/// (the programme drops from -10 to -30 dBFS at the commit: the kept meter still reads about the loud
/// part, a meter added by the commit reads 20 LU lower).
#[test]
fn transaction_replaces_half_the_graph() {
    let bus = Bus::start();
    let d = Daemon::start(&bus, "tx");
    let c = bus.connect();
    let p = daemon_proxy(&c);
    wait_for("node objects", || node_objects(&bus).len() == 3);
    d.wait_blocks((1.0 * RATE / BLOCK as f64) as u64);
    wait_for("integrated loudness", || zbus::block_on(p.meters()).unwrap()["meter"]["integrated_lufs"].is_finite());
    let before = zbus::block_on(p.meters()).unwrap()["meter"]["integrated_lufs"];
    let graph = signals(&c, "GraphChanged");

    zbus::block_on(async {
        p.begin().await?;
        p.remove_node("comp").await?;
        p.remove_node("my-gain.stage").await?;
        p.add_node("limit", "limiter", HashMap::from([("ceiling_dbtp", -3.0), ("lookahead_ms", 1.0)]), 0, 0).await?;
        p.add_node("fresh", "loudness_meter", HashMap::new(), 0, 0).await?;
        p.connect("meter", "limit").await?;
        p.connect("limit", "out").await?;
        p.connect("in", "fresh").await
    })
    .unwrap();
    let r = zbus::block_on(p.commit()).unwrap();
    d.level_db.store((-30.0f32).to_bits(), Ordering::Relaxed);
    assert_eq!((u(&r, "kept"), u(&r, "inserted"), u(&r, "removed")), (1, 2, 2), "{r:?}");
    assert!(u(&r, "latency_samples") > 0);
    graph.recv_timeout(WAIT).expect("GraphChanged");
    wait_for("node objects follow", || {
        node_objects(&bus)
            == ["/org/ballast/Daemon1/node/fresh", "/org/ballast/Daemon1/node/limit", "/org/ballast/Daemon1/node/meter"]
    });

    d.wait_blocks((3.0 * RATE / BLOCK as f64) as u64);
    let m = zbus::block_on(p.meters()).unwrap();
    let (kept, fresh) = (m["meter"]["integrated_lufs"], m["fresh"]["integrated_lufs"]);
    println!("integrated before commit {before:.2}, kept meter {kept:.2}, fresh meter {fresh:.2} LUFS");
    // Within 3 LU: the 400 ms gating blocks that straddle the step pass the relative gate and pull the
    // kept meter down a little (measured: about 1 LU).
    assert!((kept - before).abs() < 3.0, "kept meter kept integrating: {before} → {kept}");
    assert!(kept - fresh > 15.0, "kept {kept} vs fresh {fresh}");
    let silent = d.silent_blocks.load(Ordering::Relaxed);
    println!("blocks {}, silent output blocks {silent}", d.blocks.load(Ordering::Relaxed));
    assert_eq!(silent, 0, "the audio never stopped");
}

#[test]
fn transactions_are_per_client_and_dropped_when_it_leaves() {
    let bus = Bus::start();
    let d = Daemon::start(&bus, "perclient");
    let a = bus.connect();
    let b = bus.connect();
    let (pa, pb) = (daemon_proxy(&a), daemon_proxy(&b));
    zbus::block_on(pa.begin()).unwrap();
    zbus::block_on(pa.add_node("x", "limiter", HashMap::new(), 0, 0)).unwrap();
    let (name, _) = error_of(zbus::block_on(pb.commit()));
    assert_eq!(name, "org.ballast.Error.Failed", "B has no transaction of its own");
    zbus::block_on(pb.begin()).unwrap();
    zbus::block_on(pb.abort()).unwrap();
    assert_eq!(d.handle().open_transactions(), 1);
    drop(pa);
    drop(a);
    wait_for("A's transaction dropped when A left", || d.handle().open_transactions() == 0);
    assert_eq!(zbus::block_on(pb.list_nodes()).unwrap().len(), 3, "nothing was applied");
}

#[test]
fn presets_round_trip_and_names_are_refused() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus, "presets");
    let c = bus.connect();
    let p = daemon_proxy(&c);
    zbus::block_on(p.set("comp", "threshold_db", -27.0)).unwrap();
    zbus::block_on(p.preset_save("night")).unwrap();
    zbus::block_on(p.set("comp", "threshold_db", -3.0)).unwrap();
    zbus::block_on(async {
        p.begin().await?;
        p.remove_node("my-gain.stage").await?;
        p.connect("comp", "out").await?;
        p.commit().await
    })
    .unwrap();
    assert_eq!(zbus::block_on(p.preset_list()).unwrap(), ["night"]);
    zbus::block_on(p.preset_load("night")).unwrap();
    assert_eq!(zbus::block_on(p.get("comp", "threshold_db")).unwrap(), -27.0);
    assert_eq!(zbus::block_on(p.list_nodes()).unwrap().len(), 3, "my-gain.stage is back");
    let long = "x".repeat(65);
    for bad in ["../x", "a/b", ".hidden", "", long.as_str()] {
        for r in [
            zbus::block_on(p.preset_save(bad)),
            zbus::block_on(p.preset_load(bad)),
            zbus::block_on(p.preset_delete(bad)),
        ] {
            let (name, msg) = error_of(r);
            assert_eq!(name, "org.ballast.Error.InvalidName", "{bad:?}: {msg}");
        }
    }
    zbus::block_on(p.preset_delete("night")).unwrap();
    assert!(zbus::block_on(p.preset_list()).unwrap().is_empty());
    let (name, _) = error_of(zbus::block_on(p.preset_load("night")));
    assert_eq!(name, "org.ballast.Error.Failed");
}

#[test]
fn meters_go_to_subscribers_only() {
    let bus = Bus::start();
    let d = Daemon::start(&bus, "meters");
    let a = bus.connect();
    let pa = daemon_proxy(&a);
    let updates = signals(&a, "MetersUpdate");
    std::thread::sleep(Duration::from_millis(300));
    assert!(updates.try_recv().is_err(), "no subscriber, no traffic");
    assert_eq!(d.meter_reads.load(Ordering::Relaxed), 0, "no subscriber: the meters are not even read");
    zbus::block_on(pa.subscribe_meters(20.0)).unwrap();
    let t = Instant::now();
    let mut n = 0;
    while n < 10 {
        let m = updates.recv_timeout(WAIT).expect("MetersUpdate");
        let values: HashMap<String, HashMap<String, f64>> = m.body().deserialize().unwrap();
        assert!(values["meter"].contains_key("momentary_lufs") && values["comp"].contains_key("gain_reduction_db"));
        n += 1;
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    println!("{n} meter updates at {rate:.1} Hz (asked 20)");
    assert_eq!(d.handle().meter_subscribers(), 1);
    zbus::block_on(pa.unsubscribe_meters()).unwrap();
    assert_eq!(d.handle().meter_subscribers(), 0);
    std::thread::sleep(Duration::from_millis(300));
    while updates.try_recv().is_ok() {}
    let reads = d.meter_reads.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));
    assert!(updates.try_recv().is_err(), "unsubscribed: no more updates");
    assert_eq!(d.meter_reads.load(Ordering::Relaxed), reads, "unsubscribed: no more meter reads");
    // A client that subscribes and leaves (a fresh connection: `a`'s signal thread keeps `a` open).
    let x = bus.connect();
    zbus::block_on(daemon_proxy(&x).subscribe_meters(5.0)).unwrap();
    assert_eq!(d.handle().meter_subscribers(), 1);
    drop(x);
    wait_for("a leaving client's subscription dropped", || d.handle().meter_subscribers() == 0);
}

#[test]
fn a_taken_name_is_refused_and_replace_takes_over() {
    let bus = Bus::start();
    let first = Daemon::start(&bus, "first");
    let e = Daemon::try_start(&bus, "second", false).err().expect("the name is taken");
    let msg = e.to_string();
    assert!(matches!(e, ServeError::NameTaken { .. }));
    assert!(!msg.contains('\n') && msg.contains("--replace"), "one friendly line: {msg}");
    let third = Daemon::try_start(&bus, "third", true).expect("--replace takes over");
    let (tx, _rx) = dbus::request_channel();
    let e = dbus::serve(BusKind::Address("unix:path=/nonexistent/bus".into()), false, tx).err().expect("no bus");
    assert!(matches!(e, ServeError::Bus(_)) && !e.to_string().contains('\n'), "{e}");
    wait_for("the first daemon notices", || first.handle().name_lost());
    let c = bus.connect();
    let owner = zbus::block_on(async {
        let dbus = zbus::fdo::DBusProxy::new(&c).await?;
        dbus.get_name_owner(zbus::names::BusName::try_from("org.ballast.Daemon1")?).await
    })
    .unwrap();
    assert_eq!(owner.as_str(), third.handle().unique_name());
}

/// The interfaces as served (`busctl introspect --xml-interface`) match the committed XML in
/// `daemon/dbus/`. `BALLAST_BLESS=1` rewrites the files.
#[test]
fn introspection_matches_committed_xml() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus, "introspect");
    wait_for("node objects", || node_objects(&bus).len() == 3);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dbus");
    for (path, iface) in
        [("/org/ballast/Daemon1", "org.ballast.Daemon1"), ("/org/ballast/Daemon1/node/comp", "org.ballast.Node1")]
    {
        let (ok, xml, err) = bus.busctl(&["introspect", "--xml-interface", "org.ballast.Daemon1", path]);
        assert!(ok, "busctl introspect: {err}");
        let start = xml.find(&format!("<interface name=\"{iface}\">")).unwrap_or_else(|| panic!("{iface} in {xml}"));
        let end = start + xml[start..].find("</interface>").unwrap() + "</interface>".len();
        let served = format!(
            "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n \
             \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n<node>\n {}\n</node>\n",
            &xml[start..end]
        );
        let file = dir.join(format!("{iface}.xml"));
        if std::env::var_os("BALLAST_BLESS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&file, &served).unwrap();
        }
        let committed = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(served, committed, "{iface} as served differs from {}; BALLAST_BLESS=1 rewrites it", file.display());
    }
}

/// xorshift64*: a seeded, reproducible stream for the fuzzer.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

/// What a failed call may be: one of ours, or the bus's own answer to a malformed call.
fn typed(name: &str) -> bool {
    const OURS: [&str; 8] = [
        "UnknownNode",
        "UnknownParam",
        "OutOfRange",
        "InvalidGraph",
        "Busy",
        "InvalidName",
        "ModelUnavailable",
        "Failed",
    ];
    const FDO: [&str; 6] =
        ["InvalidArgs", "UnknownMethod", "UnknownObject", "UnknownInterface", "UnknownProperty", "Failed"];
    name.strip_prefix("org.ballast.Error.").is_some_and(|n| OURS.contains(&n))
        || name.strip_prefix("org.freedesktop.DBus.Error.").is_some_and(|n| FDO.contains(&n))
}

/// 10,000 seeded random calls from 4 concurrent clients: unknown names, NaN, ±inf, huge and empty
/// strings, wrong argument types, unknown methods, random transactions and presets. The daemon must
/// answer every one (a result or a typed error), keep running audio, and still answer afterwards.
#[test]
fn fuzz_10000_calls_only_typed_errors() {
    const CLIENTS: u64 = 4;
    const CALLS: u64 = 2_500;
    let bus = Bus::start();
    let d = Daemon::start(&bus, "fuzz");
    wait_for("node objects", || node_objects(&bus).len() == 3);
    let huge = "n".repeat(100_000);
    let mut workers = Vec::new();
    for client in 0..CLIENTS {
        let conn = bus.connect();
        let huge = huge.clone();
        workers.push(std::thread::spawn(move || {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (client + 1));
            let p = daemon_proxy(&conn);
            let names = [
                "meter",
                "comp",
                "my-gain.stage",
                "limit",
                "x",
                "",
                "in",
                "out",
                "../x",
                "a/b",
                ".hidden",
                huge.as_str(),
                "é",
                "comp:in_1",
                "comp:out_9",
                "in:in_l",
                "out:out_r",
                "meter:out_2",
                "x:out",
            ];
            let params = [
                "threshold_db",
                "ratio",
                "band2.threshold_db",
                "crossover_1_hz",
                "nope",
                "",
                huge.as_str(),
                "ceiling_dbtp",
                "detector",
                "knee_db",
            ];
            let values =
                [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -20.0, 1e308, -1e308, 1e-320, 5.0, 1.0, 100.0];
            let kinds =
                ["compressor", "limiter", "loudness_meter", "multiband", "tone", "noise", "nope", "", huge.as_str()];
            let counts = [0u32, 1, 2, 6, 8, 9, u32::MAX];
            let mut errors: HashMap<String, u64> = HashMap::new();
            let mut ok = 0u64;
            let mut commits = 0u64;
            for _ in 0..CALLS {
                let n = rng.pick(&names);
                let n2 = rng.pick(&names);
                let prm = rng.pick(&params);
                let v = rng.pick(&values);
                let result: zbus::Result<()> = zbus::block_on(async {
                    match rng.next() % 26 {
                        0 => p.status().await.map(drop),
                        1 => p.list_nodes().await.map(drop),
                        2 => p.get(n, prm).await.map(drop),
                        3 | 4 => p.set(n, prm, v).await.map(drop),
                        5 => p.bypass(n, rng.next() % 2 == 0).await,
                        6 => p.begin().await,
                        7 | 8 => {
                            let params = HashMap::from([(prm, v)]);
                            let (c, b) = (rng.pick(&counts), rng.pick(&counts));
                            let kind = rng.pick(&kinds);
                            p.add_node(n, kind, params, c, b).await
                        }
                        9 => p.remove_node(n).await,
                        10 | 11 => p.connect(n, n2).await,
                        12 => p.disconnect(n, n2).await,
                        13 => p.commit().await.map(drop),
                        14 => {
                            // A whole transaction of 1..4 mostly sensible steps, so commits meet real graphs.
                            let _ = p.begin().await;
                            let ours = ["t1", "t2", "t3", "t4"];
                            let sources = ["in", "meter", "comp", "t1", "t2", "t3", "t4"];
                            let sinks = ["out", "comp", "t1", "t2", "t3", "t4"];
                            for _ in 0..1 + rng.next() % 4 {
                                let _ = match rng.next() % 4 {
                                    0 => {
                                        let kind = rng.pick(&["compressor", "limiter", "loudness_meter", "multiband"]);
                                        let bands = if kind == "multiband" { 3 } else { 0 };
                                        p.add_node(rng.pick(&ours), kind, HashMap::new(), 0, bands).await
                                    }
                                    1 => p.remove_node(rng.pick(&ours)).await,
                                    _ => p.connect(rng.pick(&sources), rng.pick(&sinks)).await,
                                };
                            }
                            let r = p.commit().await.map(drop);
                            commits += u64::from(r.is_ok());
                            r
                        }
                        15 => p.abort().await,
                        16 if rng.next() % 10 == 0 => p.reload().await,
                        16 => p.meters().await.map(drop),
                        17 => p.preset_save(n).await,
                        18 => p.preset_load(n).await,
                        19 => p.preset_list().await.map(drop),
                        20 => p.preset_delete(n).await,
                        21 => p.subscribe_meters(v).await,
                        22 => p.unsubscribe_meters().await,
                        23 => {
                            let path = dbus::node_path(n);
                            let node = Node1Proxy::builder(&conn)
                                .path(path)
                                .cache_properties(zbus::proxy::CacheProperties::No)
                                .build()
                                .await?;
                            match rng.next() % 4 {
                                0 => node.describe().await.map(drop),
                                1 => node.set(prm, v).await.map(drop),
                                2 => node.params().await.map(drop),
                                _ => node.bypass(true).await,
                            }
                        }
                        24 => {
                            // Wrong argument types.
                            let m = rng.pick(&["Set", "Get", "AddNode", "Bypass", "Commit", "PresetSave"]);
                            conn.call_method(
                                Some("org.ballast.Daemon1"),
                                "/org/ballast/Daemon1",
                                Some("org.ballast.Daemon1"),
                                m,
                                &(1u32, v, true),
                            )
                            .await
                            .map(drop)
                        }
                        _ => conn
                            .call_method(
                                Some("org.ballast.Daemon1"),
                                "/org/ballast/Daemon1",
                                Some("org.ballast.Daemon1"),
                                "Explode",
                                &(),
                            )
                            .await
                            .map(drop),
                    }
                });
                match result {
                    Ok(()) => ok += 1,
                    Err(zbus::Error::MethodError(name, msg, _)) => {
                        assert!(typed(name.as_str()), "untyped error {name}: {msg:?}");
                        assert!(msg.as_deref().is_some_and(|m| !m.is_empty() && m.len() < 2000), "{name}: {msg:?}");
                        *errors.entry(name.to_string()).or_default() += 1;
                    }
                    Err(zbus::Error::FDO(e)) => {
                        use zbus::DBusError;
                        let name = e.name().to_string();
                        assert!(typed(&name), "untyped error {name}: {:?}", e.description());
                        *errors.entry(name).or_default() += 1;
                    }
                    // The empty name's object path (`…/node/`) is refused by zbus on our side, unsent.
                    Err(zbus::Error::InvalidObjectPath) => {}
                    Err(e) => panic!("not a typed D-Bus error: {e:?}"),
                }
            }
            (ok, commits, errors)
        }));
    }
    let (mut ok, mut commits) = (0, 0);
    let mut errors: HashMap<String, u64> = HashMap::new();
    for w in workers {
        let (o, c, e) = w.join().expect("fuzz client");
        ok += o;
        commits += c;
        for (k, v) in e {
            *errors.entry(k).or_default() += v;
        }
    }
    let mut table: Vec<_> = errors.into_iter().collect();
    table.sort();
    println!("{} calls: {ok} ok ({commits} transactions applied); errors {table:?}", CLIENTS * CALLS);
    let c = bus.connect();
    let p = daemon_proxy(&c);
    assert_eq!(u(&zbus::block_on(p.status()).unwrap(), "sample_rate_hz"), 48_000, "still answering");
    println!(
        "nodes after the fuzz: {:?}",
        zbus::block_on(p.list_nodes()).unwrap().iter().map(|n| &n.0).collect::<Vec<_>>()
    );
    d.wait_blocks(20);
    let m = zbus::block_on(p.meters()).unwrap();
    assert!(m.values().flat_map(|v| v.values()).all(|x| !x.is_infinite() || *x < 0.0), "meters sane: {m:?}");
}

/// `Set` from a client: the round trip (call → reply; the command is then in the RT side's ring), and
/// to the change being in effect on the RT side (the engine has applied the command; it picks commands
/// up at the start of each 256-frame block, so this adds up to one period, 5.3 ms, on top). p50, p99
/// and max printed (figures for the README, no assertion on speed): 10,000 round trips, 1,000 in-effect
/// measurements.
#[test]
fn set_round_trip_figures() {
    let bus = Bus::start();
    let d = Daemon::start(&bus, "roundtrip");
    let c = bus.connect();
    let p = daemon_proxy(&c);
    let quantiles = |times: &mut Vec<Duration>| {
        times.sort();
        let q = |f: f64| times[((times.len() as f64 * f) as usize).min(times.len() - 1)];
        format!("p50 {:?}, p99 {:?}, max {:?}", q(0.5), q(0.99), times[times.len() - 1])
    };
    let mut round = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let v = -20.0 - (i % 10) as f64;
        let t = Instant::now();
        assert_eq!(zbus::block_on(p.set("comp", "threshold_db", v)).unwrap(), v);
        round.push(t.elapsed());
    }
    let mut effect = Vec::with_capacity(1_000);
    let mut rng = Rng(0x5eed);
    let period_us = (BLOCK as f64 / RATE * 1e6) as u64;
    for i in 0..1_000 {
        let v = -20.0 - (i % 10) as f64;
        // A random phase against the audio thread's blocks: the loop would otherwise lock to them
        // (each measurement ends just after a block started, so the next would wait a whole period).
        std::thread::sleep(Duration::from_micros(rng.next() % period_us));
        let before = d.engine_stats.snapshot().commands;
        let t = Instant::now();
        zbus::block_on(p.set("comp", "threshold_db", v)).unwrap();
        while d.engine_stats.snapshot().commands == before {
            assert!(t.elapsed() < WAIT, "the RT side never applied the change");
            std::thread::sleep(Duration::from_micros(50));
        }
        effect.push(t.elapsed());
    }
    println!("Set round trip, 10000 calls: {}", quantiles(&mut round));
    println!("Set to in effect on the RT side (256-frame blocks), 1000 calls: {}", quantiles(&mut effect));
}

/// A private bus run from a config that includes the system bus policy (`system.conf`) and ours
/// (`daemon/dbus/org.ballast.Daemon1.conf`), as a system bus with our policy installed would be.
struct SystemBus {
    dir: PathBuf,
    address: String,
    pid: i32,
}

impl SystemBus {
    fn start(tag: &str) -> SystemBus {
        let dir = std::env::temp_dir().join(format!("ballast-sysbus-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("policy")).unwrap();
        let policy = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dbus/org.ballast.Daemon1.conf");
        std::fs::copy(&policy, dir.join("policy/org.ballast.Daemon1.conf")).unwrap();
        let config = format!(
            "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN\"\n \
             \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig>\n\
             <include>/usr/share/dbus-1/system.conf</include>\n<pidfile>{0}/pid</pidfile>\n\
             <includedir>{0}/policy</includedir>\n</busconfig>\n",
            dir.display()
        );
        std::fs::write(dir.join("bus.conf"), config).unwrap();
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", dir.join("bus.conf").display()))
            .arg(format!("--address=unix:path={}", dir.join("bus").display()))
            .args(["--fork", "--print-address=1", "--print-pid=1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon runs");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let address = lines.next().expect("the bus prints its address").unwrap();
        let pid: i32 = lines.next().unwrap().unwrap().trim().parse().unwrap();
        let _ = child.wait();
        SystemBus { dir, address, pid }
    }

    /// `dbus-send --print-reply` to ballast, as `user` (through runuser when not root).
    fn send_as(&self, user: &str, path: &str, method: &str, args: &[&str]) -> (bool, String) {
        let mut cmd = if user == "root" {
            Command::new("dbus-send")
        } else {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--", "dbus-send"]);
            c
        };
        let out = cmd
            .arg(format!("--bus={}", self.address))
            .args(["--print-reply", "--dest=org.ballast.Daemon1", path, method])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }
}

impl SystemBus {
    /// `dbus-send` as nobody with group `gid` as a supplementary group (setpriv): a non-root member of
    /// that group. dbus-daemon reads the caller's groups from the socket (SO_PEERGROUPS), so no user needs
    /// to be listed in /etc/group for it.
    fn send_as_member(&self, gid: &str, path: &str, method: &str, args: &[&str]) -> (bool, String) {
        let out = Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", &format!("--groups={gid}"), "dbus-send"])
            .arg(format!("--bus={}", self.address))
            .args(["--print-reply", "--dest=org.ballast.Daemon1", path, method])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }
}

impl Drop for SystemBus {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) of the dbus-daemon this guard started.
        unsafe {
            libc::kill(self.pid, libc::SIGTERM);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The system-bus policy: root may own the name and call everything; an unprivileged user (nobody)
/// may read (status, nodes, parameters, descriptors, properties, presets' names, meters) and is
/// refused every call that changes something, and may not own the name.
#[test]
fn system_policy_lets_others_only_read() {
    if !nix_is_root() {
        panic!("this test needs root (to run a client as another user with runuser)");
    }
    let bus = SystemBus::start("others");
    let _d = Daemon::try_start_at(&bus.address, "policy", false).expect("root may own the name");
    let root = "/org/ballast/Daemon1";
    let comp = "/org/ballast/Daemon1/node/comp";
    wait_for("node objects", || bus.send_as("root", comp, "org.ballast.Node1.Get", &["string:ratio"]).0);

    let reads: [(&str, &str, &[&str]); 9] = [
        (root, "org.ballast.Daemon1.Status", &[]),
        (root, "org.ballast.Daemon1.ListNodes", &[]),
        (root, "org.ballast.Daemon1.Get", &["string:comp", "string:threshold_db"]),
        (root, "org.ballast.Daemon1.PresetList", &[]),
        (root, "org.ballast.Daemon1.Meters", &[]),
        (comp, "org.ballast.Node1.Describe", &[]),
        (comp, "org.ballast.Node1.Get", &["string:ratio"]),
        (comp, "org.freedesktop.DBus.Properties.Get", &["string:org.ballast.Node1", "string:Params"]),
        (root, "org.freedesktop.DBus.Introspectable.Introspect", &[]),
    ];
    for (path, method, args) in reads {
        let (ok, out) = bus.send_as("nobody", path, method, args);
        assert!(ok, "nobody may call {method}: {out}");
    }
    let writes: [(&str, &str, &[&str]); 10] = [
        (root, "org.ballast.Daemon1.Set", &["string:comp", "string:threshold_db", "double:-30"]),
        (root, "org.ballast.Daemon1.Bypass", &["string:comp", "boolean:true"]),
        (root, "org.ballast.Daemon1.Begin", &[]),
        (root, "org.ballast.Daemon1.Commit", &[]),
        (root, "org.ballast.Daemon1.Reload", &[]),
        (root, "org.ballast.Daemon1.PresetSave", &["string:x"]),
        (root, "org.ballast.Daemon1.PresetLoad", &["string:x"]),
        (root, "org.ballast.Daemon1.PresetDelete", &["string:x"]),
        (comp, "org.ballast.Node1.Set", &["string:ratio", "double:9"]),
        (comp, "org.ballast.Node1.Bypass", &["boolean:true"]),
    ];
    for (path, method, args) in writes {
        let (ok, out) = bus.send_as("nobody", path, method, args);
        assert!(!ok && out.contains("org.freedesktop.DBus.Error.AccessDenied"), "nobody must not call {method}: {out}");
    }
    let (ok, out) = bus.send_as("nobody", root, "org.ballast.Daemon1.Get", &["string:comp", "string:threshold_db"]);
    assert!(ok && out.contains("double -20"), "nothing changed: {out}");
    let (ok, out) =
        bus.send_as("root", root, "org.ballast.Daemon1.Set", &["string:comp", "string:threshold_db", "double:-30"]);
    assert!(ok && out.contains("double -30"), "root may change: {out}");

    let out = Command::new("runuser")
        .args(["-u", "nobody", "--", "dbus-send", &format!("--bus={}", bus.address), "--print-reply"])
        .args(["--dest=org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.RequestName"])
        .args(["string:org.ballast.Daemon1", "uint32:4"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("AccessDenied"), "nobody may not own the name: {text}");
}

/// The methods that change something, each with valid arguments (what `nobody` is refused above).
const WRITES: [(&str, &str, &[&str]); 6] = [
    ("/org/ballast/Daemon1", "org.ballast.Daemon1.Set", &["string:comp", "string:threshold_db", "double:-30"]),
    ("/org/ballast/Daemon1", "org.ballast.Daemon1.Bypass", &["string:comp", "boolean:false"]),
    ("/org/ballast/Daemon1", "org.ballast.Daemon1.PresetSave", &["string:group-made"]),
    ("/org/ballast/Daemon1", "org.ballast.Daemon1.PresetDelete", &["string:group-made"]),
    ("/org/ballast/Daemon1/node/comp", "org.ballast.Node1.Set", &["string:ratio", "double:9"]),
    ("/org/ballast/Daemon1/node/comp", "org.ballast.Node1.Bypass", &["boolean:false"]),
];

/// Group `ballast`'s id, the group created when missing: dbus-daemon resolves the policy's
/// `group="ballast"` when it reads its config, and a group that does not exist makes the rule void.
fn ballast_gid() -> String {
    let out = Command::new("groupadd").args(["-f", "--system", "ballast"]).output().expect("groupadd runs");
    assert!(out.status.success(), "groupadd -f ballast: {}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new("getent").args(["group", "ballast"]).output().unwrap();
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    line.split(':').nth(2).map(str::to_string).unwrap_or_else(|| panic!("getent group ballast: {line:?}"))
}

/// The policy's `ballast` group: a non-root member (nobody with supplementary group ballast) may call
/// every method that changes something, and the change is made; a non-member (nobody) is refused the
/// same calls by the bus.
#[test]
fn system_policy_lets_the_ballast_group_change_things() {
    if !nix_is_root() {
        panic!("this test needs root (to create group ballast and run clients as other users)");
    }
    let gid = ballast_gid();
    let bus = SystemBus::start("group");
    let _d = Daemon::try_start_at(&bus.address, "policy-group", false).expect("root may own the name");
    let comp = "/org/ballast/Daemon1/node/comp";
    wait_for("node objects", || bus.send_as("root", comp, "org.ballast.Node1.Get", &["string:ratio"]).0);

    for (path, method, args) in WRITES {
        let (ok, out) = bus.send_as("nobody", path, method, args);
        assert!(!ok && out.contains("org.freedesktop.DBus.Error.AccessDenied"), "nobody must not call {method}: {out}");
    }
    for (path, method, args) in WRITES {
        let (ok, out) = bus.send_as_member(&gid, path, method, args);
        assert!(ok, "a member of group ballast may call {method}: {out}");
    }
    let root = "/org/ballast/Daemon1";
    let (ok, out) = bus.send_as("nobody", root, "org.ballast.Daemon1.Get", &["string:comp", "string:threshold_db"]);
    assert!(ok && out.contains("double -30"), "the member's Set was made: {out}");
    let (ok, out) = bus.send_as("nobody", comp, "org.ballast.Node1.Get", &["string:ratio"]);
    assert!(ok && out.contains("double 9"), "the member's node Set was made: {out}");
    // Each dbus-send is a connection of its own, so a whole transaction cannot be sent this way; that
    // the member may open one, and reload, is what the policy decides.
    for method in ["org.ballast.Daemon1.Begin", "org.ballast.Daemon1.Reload"] {
        let (ok, out) = bus.send_as_member(&gid, root, method, &[]);
        assert!(ok, "a member of group ballast may call {method}: {out}");
        let (ok, out) = bus.send_as("nobody", root, method, &[]);
        assert!(!ok && out.contains("AccessDenied"), "nobody must not call {method}: {out}");
    }
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
