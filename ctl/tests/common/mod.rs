//! A real private bus (`dbus-daemon --session`, one per test, killed by a guard) and a daemon built from
//! ballastd's own parts: `ballastd::dbus::serve` plus a control loop answering with a real
//! `control_api::Answerer` over a real `Controller`, whose `Engine` runs on its own thread at about real
//! time (the pattern of `daemon/tests/dbus.rs`). The `ballastctl` binary is run against it.

#![allow(dead_code)]

use std::f32::consts::TAU;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ballastd::config;
use ballastd::control_api::{Answer, Answerer, StatusInfo};
use ballastd::dbus::{self, BusKind, DbusHandle};
use ballastd::engine::{self, EngineConfig};
use ballastd::presets::PresetStore;

pub const RATE: f64 = 48_000.0;
pub const BLOCK: usize = 256;
pub const WAIT: Duration = Duration::from_secs(20);

/// in → meter → comp → my-gain.stage → out (stereo), the engine's input a 1 kHz sine at -10 dBFS.
pub const GRAPH: &str = r#"
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

pub use ballast_testsupport::Bus;

pub struct Daemon {
    handle: Option<DbusHandle>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Blocks the audio thread processed, and of those, blocks whose output was silent.
    pub blocks: Arc<AtomicU64>,
    pub silent_blocks: Arc<AtomicU64>,
    dir: PathBuf,
}

impl Daemon {
    pub fn start(bus: &Bus, name: &str) -> Daemon {
        let config = config::parse(GRAPH, "test.toml").expect("valid");
        let (mut controller, mut engine, reclaimer) =
            engine::new(EngineConfig { sample_rate: RATE, max_block: BLOCK, ..EngineConfig::default() });
        controller.apply(&config.graph).unwrap();
        let dir = std::env::temp_dir().join(format!("ballastctl-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let presets = PresetStore::new(dir.join("presets"));
        let stop = Arc::new(AtomicBool::new(false));
        let blocks = Arc::new(AtomicU64::new(0));
        let silent_blocks = Arc::new(AtomicU64::new(0));

        let (req_tx, req_rx) = dbus::request_channel();
        let handle = dbus::serve(BusKind::Address(bus.address.clone()), false, req_tx).expect("serve");

        let started = Instant::now();
        let s = stop.clone();
        let control = std::thread::spawn(move || {
            let _reclaimer = reclaimer.spawn(Duration::from_millis(20)).unwrap();
            while !s.load(Ordering::Relaxed) {
                let Ok((req, reply)) = req_rx.recv_timeout(Duration::from_millis(50)) else { continue };
                let status = StatusInfo {
                    backend: "test".into(),
                    sample_rate_hz: RATE as u32,
                    block_size: BLOCK as u32,
                    backend_latency_samples: BLOCK as u64,
                    dsp_load_percent: 1.5,
                    xruns: 0,
                    uptime_s: started.elapsed().as_secs_f64(),
                    version: "9.9.9-test".into(),
                };
                let answer = Answerer { controller: &mut controller, status, presets: &presets }.answer(req);
                // The service's reload: the config's graph again.
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

        let (s, b, sb) = (stop.clone(), blocks.clone(), silent_blocks.clone());
        let audio = std::thread::spawn(move || {
            let step = TAU * 1000.0 / RATE as f32;
            let amp = 10f32.powf(-10.0 / 20.0);
            let mut phase = 0.0f32;
            let mut input = vec![0.0f32; BLOCK];
            let (mut l, mut r) = (vec![0.0f32; BLOCK], vec![0.0f32; BLOCK]);
            let period = Duration::from_secs_f64(BLOCK as f64 / RATE);
            let mut next = Instant::now();
            while !s.load(Ordering::Relaxed) {
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
                next += period;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
        });
        let d = Daemon { handle: Some(handle), stop, threads: vec![control, audio], blocks, silent_blocks, dir };
        // Node objects appear once the events thread has synced with the control thread.
        let t = Instant::now();
        while !ctl(bus, &["params", "comp"]).ok() {
            assert!(t.elapsed() < WAIT, "the node objects never appeared");
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    pub fn wait_blocks(&self, n: u64) {
        let until = self.blocks.load(Ordering::Relaxed) + n;
        let t = Instant::now();
        while self.blocks.load(Ordering::Relaxed) < until {
            assert!(t.elapsed() < WAIT * 2, "the audio thread stalled");
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

/// One run of the real `ballastctl`.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == 0
    }

    /// Asserts success and returns stdout.
    pub fn out(&self) -> &str {
        assert_eq!(self.code, 0, "ballastctl failed: {}{}", self.stdout, self.stderr);
        &self.stdout
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.out()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    /// Asserts the failure: exit `code`, one line `ballastctl: …` on stderr containing `want`.
    pub fn fails(&self, code: i32, want: &str) {
        assert_eq!(self.code, code, "exit code; stdout {:?} stderr {:?}", self.stdout, self.stderr);
        assert_eq!(self.stderr.lines().count(), 1, "one line: {:?}", self.stderr);
        assert!(self.stderr.starts_with("ballastctl: "), "{:?}", self.stderr);
        assert!(self.stderr.contains(want), "{:?} should say {want:?}", self.stderr);
    }
}

fn finish(o: Output) -> Run {
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    }
}

pub fn ballastctl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ballastctl"));
    c.env_remove("DBUS_SESSION_BUS_ADDRESS").env_remove("DBUS_SYSTEM_BUS_ADDRESS");
    c
}

/// `ballastctl ARGS` on `bus` (through DBUS_SESSION_BUS_ADDRESS, as a user's shell would have it).
pub fn ctl(bus: &Bus, args: &[&str]) -> Run {
    finish(ballastctl().args(args).env("DBUS_SESSION_BUS_ADDRESS", &bus.address).output().unwrap())
}

/// `ballastctl --address ADDR ARGS`.
pub fn ctl_at(address: &str, args: &[&str]) -> Run {
    finish(ballastctl().arg("--address").arg(address).args(args).output().unwrap())
}

pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
