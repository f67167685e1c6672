//! `Set` over D-Bus, from a client to the new value being in effect on the RT thread, against the REAL
//! `ballastd` binary on a JACK dummy server (`jackd -d dummy -r 48000 -p FRAMES`, 256 and 64 frames)
//! and a private `dbus-daemon --session`, all started here and stopped on the way out.
//!
//! How "in effect on the RT thread" is seen: ballastd runs `tone → out`, a 1 kHz tone, and a JACK client
//! of this bench listens to `out_l`. At 48 kHz the tone repeats exactly every 48 samples, so at rest
//! every sample equals the one 48 samples earlier (to float rounding, ~1e-7). `Set(tone, waveform, …)`
//! switches sine ↔ square; the node starts its 5 ms crossfade at the first sample of the block in
//! which the RT side applies the command, and from that sample on the output is no longer periodic.
//! The listener (after ballastd in JACK's graph order, so in the same cycle) stamps the first block that
//! breaks periodicity by more than 1e-4. The figure is that stamp minus the moment before the call: the
//! D-Bus round trip, the control thread's validation and ring push, the wait for the next JACK cycle,
//! ballastd's processing of it. Nothing in the daemon is asked for its own copy of the value.
//!
//! The RT side picks commands up only at the start of a cycle, so the wait for the next cycle (uniform
//! over one period when calls come at random moments, which is how this bench times them) is part of
//! the figure: at 256 frames a period is 5.33 ms and sets a floor of p99 ≈ 5.3 ms, whatever the control
//! path costs; at 64 frames the period is 1.33 ms.
//!
//! First a distribution pass prints p50/p99/max over `BALLAST_BENCH_CALLS` calls (default 10,000) per
//! block size, for the reply alone and for in effect on the RT side; then criterion measures both.
//! `ballastd` is built here (`cargo build --profile bench -p ballastd`) so that it is never stale.
//! `BALLAST_BENCH_STATE=tmpfs` keeps the daemon's state file in /dev/shm (see [`state_home`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_testsupport::{wait_for, Bus, Child, Jackd};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use jack::{AudioIn, Client, Control, ProcessScope};

const RATE: u32 = 48_000;
/// Samples per period of the 1 kHz tone at 48 kHz.
const PERIOD_SAMPLES: usize = 48;
/// A sample further than this from the one a period earlier means the output changed (the tone peaks at
/// 0.1; float rounding at rest stays near 1e-7; the crossfade's first sample moves by ~4e-4).
const CHANGED: f32 = 1e-4;
const WAIT: Duration = Duration::from_secs(30);

#[zbus::proxy(
    interface = "org.ballast.Daemon1",
    default_service = "org.ballast.Daemon1",
    default_path = "/org/ballast/Daemon1"
)]
trait Daemon1 {
    fn set(&self, node: &str, param: &str, value: f64) -> zbus::Result<f64>;
    fn status(&self) -> zbus::Result<HashMap<String, zbus::zvariant::OwnedVariant>>;
}

fn config(client: &str) -> String {
    format!(
        "[engine]\nbackend = \"jack\"\nclient_name = \"{client}\"\n\n[ports]\naudio_out = [\"out_l\", \"out_r\"]\n\n\
         [nodes.tone]\nkind = \"tone\"\nfreq_hz = 1000\nlevel_db = -20\n\n[links]\nchain = [\"tone\", \"out\"]\n"
    )
}

fn poll<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_for(WAIT, what, f)
}

/// The ballastd binary, built with this bench's profile (so it shares the bench's compiled dependencies).
fn ballastd_binary() -> PathBuf {
    // This bench runs from target/release/deps; the bench profile builds into target/release.
    let exe = std::env::current_exe().unwrap();
    ballast_testsupport::ballastd_binary("bench", exe.parent().and_then(Path::parent).unwrap())
}

/// Where ballastd keeps its state file. `BALLAST_BENCH_STATE=tmpfs` puts it in /dev/shm, where fsync
/// costs nothing, to tell how much of a reply is the state save that follows each change.
fn state_home(dir: &Path) -> PathBuf {
    match std::env::var("BALLAST_BENCH_STATE").as_deref() {
        Ok("tmpfs") => PathBuf::from(format!("/dev/shm/ballast-bench-state-{}", std::process::id())),
        _ => dir.join("state"),
    }
}

/// What the listener's process callback shares with the measuring thread (atomics only).
struct Shared {
    epoch: Instant,
    /// Set by the measurer just before a call; the callback clears it when it sees the change.
    armed: AtomicBool,
    /// Nanoseconds since `epoch` at the start of the callback of the first changed block.
    hit_ns: AtomicU64,
    /// Blocks seen; the block count at the last block that was not periodic.
    blocks: AtomicU64,
    last_unsettled: AtomicU64,
}

type Body = Box<dyn FnMut(&Client, &ProcessScope) -> Control + Send>;

/// jackd, dbus-daemon, ballastd and the listener for one block size.
struct Rig {
    frames: usize,
    shared: Arc<Shared>,
    proxy: Daemon1Proxy<'static>,
    _conn: zbus::Connection,
    _listener: jack::AsyncClient<(), jack::contrib::ClosureProcessHandler<(), Body>>,
    _daemon: Child,
    _bus: Bus,
    _jackd: Jackd,
    waveform: f64,
    rng: u64,
}

impl Rig {
    fn start(bin: &Path, frames: usize) -> Rig {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("dbus-set-{frames}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let server = format!("bbench{frames}-{}", std::process::id());
        let jackd = Jackd::with_frames(&server, frames);
        let bus = Bus::start();
        let client = "bbench";
        std::fs::write(dir.join("ballast.toml"), config(client)).unwrap();
        let daemon = Child::spawn(
            Command::new(bin)
                .arg("--config")
                .arg(dir.join("ballast.toml"))
                .env("HOME", &dir)
                .env("XDG_CONFIG_HOME", dir.join("config"))
                .env("XDG_STATE_HOME", state_home(&dir))
                .env("JACK_DEFAULT_SERVER", &server)
                .env("JACK_NO_START_SERVER", "1")
                .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
                .env("RUST_LOG", "warn")
                .env_remove("NOTIFY_SOCKET")
                .env_remove("JOURNAL_STREAM")
                .env_remove("STATE_DIRECTORY")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("ballastd.log")).unwrap()),
        )
        .expect("ballastd starts");
        jackd.wait_ports(&[&format!("{client}:out_l")]);

        let shared = Arc::new(Shared {
            epoch: Instant::now(),
            armed: AtomicBool::new(false),
            hit_ns: AtomicU64::new(0),
            blocks: AtomicU64::new(0),
            last_unsettled: AtomicU64::new(0),
        });
        let (jc, _) = ballastd::backend::jack::open_client("listener", Some(&server)).expect("a JACK client");
        let input = jc.register_port("in", AudioIn::default()).unwrap();
        let s = shared.clone();
        // The last period of samples, as a ring: no allocation in the callback.
        let mut history = [0.0f32; PERIOD_SAMPLES];
        let mut at = 0usize;
        let body: Body = Box::new(move |_, ps| {
            let now = s.epoch.elapsed().as_nanos() as u64;
            let mut changed = false;
            for &x in input.as_slice(ps) {
                // A NaN counts as a change too.
                let d = (x - history[at]).abs();
                changed |= d > CHANGED || d.is_nan();
                history[at] = x;
                at = (at + 1) % PERIOD_SAMPLES;
            }
            let block = s.blocks.fetch_add(1, Ordering::AcqRel) + 1;
            if changed {
                s.last_unsettled.store(block, Ordering::Release);
                if s.armed.swap(false, Ordering::AcqRel) {
                    s.hit_ns.store(now, Ordering::Release);
                }
            }
            Control::Continue
        });
        let listener = jc.activate_async((), jack::contrib::ClosureProcessHandler::new(body)).unwrap();
        listener.as_client().connect_ports_by_name(&format!("{client}:out_l"), "listener:in").unwrap();

        let conn = zbus::block_on(zbus::connection::Builder::address(bus.address.as_str()).build()).expect("bus");
        let proxy = zbus::block_on(Daemon1Proxy::new(&conn)).unwrap();
        poll("ballastd on D-Bus", || zbus::block_on(proxy.status()).ok());
        let rig = Rig {
            frames,
            shared,
            proxy,
            _conn: conn,
            _listener: listener,
            _daemon: daemon,
            _bus: bus,
            _jackd: jackd,
            waveform: 0.0,
            rng: 0x5eed_1234_abcd_ef01,
        };
        rig.wait_settled();
        rig
    }

    fn period(&self) -> Duration {
        Duration::from_secs_f64(self.frames as f64 / RATE as f64)
    }

    /// Until the output has been periodic for longer than a tone period plus one block (the last
    /// crossfade is over and the listener's history holds only settled samples).
    fn wait_settled(&self) {
        let need = (PERIOD_SAMPLES / self.frames) as u64 + 2;
        let s = &self.shared;
        let t = Instant::now();
        // Polled finely: a coarse poll would add its own granularity to every measurement's pace.
        while s.blocks.load(Ordering::Acquire) < s.last_unsettled.load(Ordering::Acquire) + need {
            assert!(t.elapsed() < WAIT, "the tone never settled");
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    fn next_waveform(&mut self) -> f64 {
        // sine (0) <-> square (2)
        self.waveform = 2.0 - self.waveform;
        self.waveform
    }

    /// One `Set` as a client makes it: the time to its reply.
    fn set_reply(&mut self) -> Duration {
        let v = self.next_waveform();
        let t = Instant::now();
        let r = zbus::block_on(self.proxy.set("tone", "waveform", v)).expect("Set");
        let d = t.elapsed();
        assert_eq!(r, v);
        d
    }

    /// One `Set` at a random moment of the JACK period: (time to its reply, time to the first block the
    /// RT side made with it).
    fn set_to_rt(&mut self) -> (Duration, Duration) {
        self.wait_settled();
        // xorshift: a random phase against the JACK cycle, so that calls do not lock to it.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        std::thread::sleep(Duration::from_nanos(self.rng % self.period().as_nanos() as u64));
        let v = self.next_waveform();
        let s = self.shared.clone();
        s.hit_ns.store(0, Ordering::Release);
        s.armed.store(true, Ordering::Release);
        let t0 = s.epoch.elapsed();
        let r = zbus::block_on(self.proxy.set("tone", "waveform", v)).expect("Set");
        let reply = s.epoch.elapsed() - t0;
        assert_eq!(r, v);
        let t = Instant::now();
        let hit = loop {
            let h = s.hit_ns.load(Ordering::Acquire);
            if h != 0 {
                break h;
            }
            assert!(t.elapsed() < WAIT, "the change never reached ballastd's output");
            std::thread::sleep(Duration::from_micros(50));
        };
        (reply, Duration::from_nanos(hit).saturating_sub(t0))
    }
}

fn quantiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let q = |f: f64| v[((v.len() as f64 * f) as usize).min(v.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!("p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms", ms(q(0.5)), ms(q(0.99)), ms(v[v.len() - 1]))
}

fn bench(c: &mut Criterion) {
    let calls: usize = std::env::var("BALLAST_BENCH_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let bin = ballastd_binary();
    for frames in [256usize, 64] {
        let mut rig = Rig::start(&bin, frames);
        if calls > 0 {
            let (mut replies, mut effects) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
            let t = Instant::now();
            for _ in 0..calls {
                let (r, e) = rig.set_to_rt();
                replies.push(r);
                effects.push(e);
            }
            println!(
                "ballastd on JACK at {frames} frames ({:.2} ms period), {calls} Set calls in {:.0?}:\n  \
                 reply:                   {}\n  in effect on the RT side: {}",
                rig.period().as_secs_f64() * 1e3,
                t.elapsed(),
                quantiles(replies),
                quantiles(effects)
            );
        }
        let mut g = c.benchmark_group(format!("dbus_set_{frames}_frames"));
        g.sampling_mode(SamplingMode::Flat).sample_size(20).measurement_time(Duration::from_secs(5));
        g.bench_function("reply", |b| b.iter(|| rig.set_reply()));
        rig.wait_settled();
        g.bench_function("in_effect_on_rt", |b| b.iter_custom(|iters| (0..iters).map(|_| rig.set_to_rt().1).sum()));
        g.finish();
        drop(rig);
        if std::env::var("BALLAST_BENCH_STATE").as_deref() == Ok("tmpfs") {
            let _ = std::fs::remove_dir_all(state_home(Path::new("")));
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
