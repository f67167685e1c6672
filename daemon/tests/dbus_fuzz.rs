//! A seeded random-call fuzzer against the REAL `ballastd` binary: a JACK dummy server
//! (`jackd -n NAME -d dummy -r 48000 -p 256`), a private `dbus-daemon --session`, and 10,000 calls from
//! 4 concurrent clients — unknown names, NaN, ±inf, huge and empty strings, wrong argument types,
//! unknown methods, random transactions, presets, reloads. The daemon must never crash, must answer every
//! call with a result or a typed error (`org.ballast.Error.*`, or the bus's standard argument/method
//! errors for malformed calls), and its audio must keep flowing: a JACK client of this test listens to
//! ballastd's outputs for the whole run and counts every block without the tone.
//!
//! (`daemon/tests/dbus.rs` fuzzes the D-Bus service in-process, with the engine on a thread of the test;
//! this one goes through the process boundary, the JACK backend and the service's control loop, state
//! saves included.)

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballastd::dbus;
use common::{scratch, wait_for, Bus, Daemon, Jackd};
use jack::{AudioIn, Client, Control, ProcessScope};
use zbus::{Connection, OwnedObjectPath, OwnedVariant};

const WAIT: Duration = Duration::from_secs(30);
const CLIENTS: u64 = 4;
const CALLS: u64 = 2_500;

/// The tone goes straight to the outputs and is never named to the fuzzer, so the outputs must carry
/// it throughout; the rest of the graph (fed by the tone, its outputs going nowhere) is the fuzzer's to
/// set, bypass, replace and rewire.
const CONFIG: &str = r#"[engine]
backend = "jack"
client_name = "bfuzz"

[ports]
audio_in = ["in_l", "in_r"]
audio_out = ["out_l", "out_r"]

[nodes.tone]
kind = "tone"
freq_hz = 1000
level_db = -20

[nodes.meter]
kind = "loudness_meter"

[nodes.comp]
kind = "compressor"
threshold_db = -20

[nodes."my-gain.stage"]
kind = "compressor"

[links]
chain = ["tone", "out"]
edges = [["tone", "meter"], ["meter", "comp"], ["comp", "my-gain.stage"]]
"#;

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
    fn params(&self) -> zbus::Result<HashMap<String, f64>>;
    fn describe(&self) -> zbus::Result<Vec<HashMap<String, OwnedVariant>>>;
    fn get(&self, param: &str) -> zbus::Result<f64>;
    fn set(&self, param: &str, value: f64) -> zbus::Result<f64>;
    fn bypass(&self, on: bool) -> zbus::Result<()>;
}

/// xorshift64*: a seeded, reproducible stream.
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

/// What a failed call may be: one of ours, or the bus's (or zbus's) standard answer to a malformed call.
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
    const FDO: [&str; 5] = ["InvalidArgs", "UnknownMethod", "UnknownObject", "UnknownInterface", "UnknownProperty"];
    name.strip_prefix("org.ballast.Error.").is_some_and(|n| OURS.contains(&n))
        || name.strip_prefix("org.freedesktop.DBus.Error.").is_some_and(|n| FDO.contains(&n))
}

/// A JACK client of the test listening to ballastd's two outputs: blocks seen, blocks without the
/// tone (peak under -40 dBFS; the tone peaks at -20), blocks with a non-finite sample.
struct Listener {
    _client: jack::AsyncClient<(), jack::contrib::ClosureProcessHandler<(), Body>>,
    blocks: Arc<AtomicU64>,
    quiet: Arc<AtomicU64>,
    nonfinite: Arc<AtomicU64>,
}

type Body = Box<dyn FnMut(&Client, &ProcessScope) -> Control + Send>;

impl Listener {
    fn start(server: &str, from: [&str; 2]) -> Listener {
        let (client, _) = ballastd::backend::jack::open_client("fuzzwatch", Some(server)).expect("a JACK client");
        let l = client.register_port("in_l", AudioIn::default()).unwrap();
        let r = client.register_port("in_r", AudioIn::default()).unwrap();
        let (blocks, quiet, nonfinite) =
            (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (b, q, n) = (blocks.clone(), quiet.clone(), nonfinite.clone());
        let body: Body = Box::new(move |_, ps| {
            let (l, r) = (l.as_slice(ps), r.as_slice(ps));
            let peak =
                l.iter().chain(r).fold(0.0f32, |m, x| if x.is_finite() { m.max(x.abs()) } else { f32::INFINITY });
            if peak.is_infinite() {
                n.fetch_add(1, Ordering::Relaxed);
            } else if peak < 0.01 {
                q.fetch_add(1, Ordering::Relaxed);
            }
            b.fetch_add(1, Ordering::Relaxed);
            Control::Continue
        });
        let client = client.activate_async((), jack::contrib::ClosureProcessHandler::new(body)).unwrap();
        let c = client.as_client();
        c.connect_ports_by_name(from[0], "fuzzwatch:in_l").unwrap();
        c.connect_ports_by_name(from[1], "fuzzwatch:in_r").unwrap();
        Listener { _client: client, blocks, quiet, nonfinite }
    }

    fn counts(&self) -> (u64, u64, u64) {
        (
            self.blocks.load(Ordering::Relaxed),
            self.quiet.load(Ordering::Relaxed),
            self.nonfinite.load(Ordering::Relaxed),
        )
    }
}

fn connect(bus: &Bus) -> Connection {
    zbus::block_on(zbus::connection::Builder::address(bus.address.as_str()).build()).expect("connect")
}

/// One client's share of the calls: (answered with a result, commits applied, errors by name).
fn fuzz_client(conn: Connection, seed: u64) -> (u64, u64, HashMap<String, u64>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
    let p = zbus::block_on(Daemon1Proxy::new(&conn)).unwrap();
    let huge = "n".repeat(100_000);
    // Every node but the tone, and names that are no node at all.
    let names = [
        "meter",
        "comp",
        "my-gain.stage",
        "limit",
        "t1",
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
        "level_db",
    ];
    let values = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -20.0, 1e308, -1e308, 1e-320, 5.0, 1.0, 100.0, -0.0];
    let kinds = ["compressor", "limiter", "loudness_meter", "multiband", "tone", "noise", "nope", "", huge.as_str()];
    let counts = [0u32, 1, 2, 6, 8, 9, u32::MAX];
    let mut errors: HashMap<String, u64> = HashMap::new();
    let (mut ok, mut commits) = (0u64, 0u64);
    for _ in 0..CALLS {
        let (n, n2, prm, v) = (rng.pick(&names), rng.pick(&names), rng.pick(&params), rng.pick(&values));
        let result: zbus::Result<()> = zbus::block_on(async {
            match rng.next() % 26 {
                0 => p.status().await.map(drop),
                1 => p.list_nodes().await.map(drop),
                2 => p.get(n, prm).await.map(drop),
                3 | 4 => p.set(n, prm, v).await.map(drop),
                5 => p.bypass(n, rng.next() % 2 == 0).await,
                6 => p.begin().await,
                7 | 8 => {
                    let (c, b, kind) = (rng.pick(&counts), rng.pick(&counts), rng.pick(&kinds));
                    p.add_node(n, kind, HashMap::from([(prm, v)]), c, b).await
                }
                9 => p.remove_node(n).await,
                10 | 11 => p.connect(n, n2).await,
                12 => p.disconnect(n, n2).await,
                13 => p.commit().await.map(drop),
                14 => {
                    // A whole transaction of 1..4 mostly sensible steps, so commits meet real graphs.
                    let _ = p.begin().await;
                    let ours = ["t1", "t2", "t3", "comp", "my-gain.stage"];
                    let sources = ["in", "meter", "comp", "t1", "t2", "t3"];
                    let sinks = ["out", "comp", "t1", "t2", "t3", "my-gain.stage"];
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
                    let node = Node1Proxy::builder(&conn)
                        .path(dbus::node_path(n))
                        .cache_properties(zbus::proxy::CacheProperties::No)
                        .build()
                        .await?;
                    match rng.next() % 5 {
                        0 => node.describe().await.map(drop),
                        1 => node.set(prm, v).await.map(drop),
                        2 => node.params().await.map(drop),
                        3 => node.get(prm).await.map(drop),
                        _ => node.bypass(true).await,
                    }
                }
                24 => {
                    // Wrong argument types, for the root object's methods and a node object's.
                    let (path, iface, m) = if rng.next() % 2 == 0 {
                        let m =
                            rng.pick(&["Set", "Get", "AddNode", "Bypass", "Commit", "PresetSave", "SubscribeMeters"]);
                        ("/org/ballast/Daemon1".to_string(), "org.ballast.Daemon1", m)
                    } else {
                        let m = rng.pick(&["Set", "Get", "Bypass", "Describe"]);
                        (dbus::node_path("comp"), "org.ballast.Node1", m)
                    };
                    let body = (1u32, v, true, n);
                    conn.call_method(Some("org.ballast.Daemon1"), path.as_str(), Some(iface), m, &body).await.map(drop)
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
            // A name that makes no valid object path (`…/node/` for the empty name) is refused by zbus
            // on our side, unsent.
            Err(zbus::Error::InvalidObjectPath) => {}
            Err(e) => panic!("not a typed D-Bus error: {e:?}"),
        }
    }
    (ok, commits, errors)
}

#[test]
fn fuzz_10000_calls_against_the_real_daemon() {
    let home = scratch("dbus-fuzz");
    let jack = Jackd::start(&format!("bfuzz-{}", std::process::id()));
    let bus = Bus::start();
    let cfg = home.join("ballast.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let env = [("JACK_DEFAULT_SERVER", jack.name.as_str()), ("DBUS_SESSION_BUS_ADDRESS", bus.address.as_str())];
    let mut d = Daemon::start(&home, &["--config", cfg.to_str().unwrap()], &env);
    d.wait_log("serving org.ballast.Daemon1", 0);
    jack.wait_ports(&["bfuzz:out_l", "bfuzz:out_r"]);
    let listener = Listener::start(&jack.name, ["bfuzz:out_l", "bfuzz:out_r"]);
    // Counting starts once the tone is heard (the tone node's smoother starts at its level, but the
    // connection is made between two blocks).
    let base = wait_for(WAIT, "the tone at the listener", || {
        let (b, q, n) = listener.counts();
        (b > 10 && q < b).then_some((b, q, n))
    });
    let settle = wait_for(WAIT, "a block with the tone after the connection", || {
        let (b, q, n) = listener.counts();
        (b > base.0 + 2).then_some((b, q, n))
    });

    let started = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let conn = connect(&bus);
            std::thread::spawn(move || fuzz_client(conn, client + 1))
        })
        .collect();
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
    let took = started.elapsed();
    let mut table: Vec<_> = errors.into_iter().collect();
    table.sort();
    println!(
        "{} calls from {CLIENTS} clients in {took:.1?}: {ok} answered with a result ({commits} transactions \
         applied); typed errors {table:?}",
        CLIENTS * CALLS
    );

    assert!(d.alive(), "ballastd died during the fuzz; log:\n{}", d.log_text());
    let c = connect(&bus);
    let p = zbus::block_on(Daemon1Proxy::new(&c)).unwrap();
    let status = zbus::block_on(p.status()).expect("still answering");
    assert!(status.contains_key("block_size"), "still running on JACK: {status:?}");
    let nodes: Vec<String> = zbus::block_on(p.list_nodes()).unwrap().into_iter().map(|n| n.0).collect();
    println!("nodes after the fuzz: {nodes:?}");
    assert!(nodes.iter().any(|n| n == "tone"), "{nodes:?}");
    // Audio after the fuzz too: a few more blocks, then the whole run's counts.
    let before = listener.counts().0;
    wait_for(WAIT, "blocks after the fuzz", || (listener.counts().0 > before + 20).then_some(()));
    let (blocks, quiet, nonfinite) = listener.counts();
    println!(
        "listener: {} blocks during and after the fuzz, {} without the tone, {} non-finite",
        blocks - settle.0,
        quiet - settle.1,
        nonfinite
    );
    assert_eq!(nonfinite, 0, "non-finite samples on ballastd's outputs");
    assert_eq!(quiet, settle.1, "blocks without the tone on ballastd's outputs during the fuzz");
    let log = d.log_text();
    assert!(!log.contains("panicked"), "a thread of ballastd panicked:\n{log}");

    d.signal(nix::sys::signal::Signal::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{status:?}; log:\n{}", d.log_text());
    let _ = std::fs::remove_dir_all(&home);
}
