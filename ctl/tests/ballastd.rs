//! `ballastctl` against the real `ballastd` binary, serving `org.ballast.Daemon1` on a private
//! `dbus-daemon`, running on a real JACK dummy server (`jackd -n NAME -d dummy -r 48000 -p 256`), with
//! a tone generator feeding a loudness meter so that the meters read real numbers. Every process is
//! stopped by its guard, even when the test panics.
//!
//! `ballastd` is found next to `ballastctl` in the target dir; the test first runs `cargo build
//! --profile test -p ballastd` (a no-op after `cargo test --workspace`) so that it is never stale. The
//! test profile matters: a plain (dev) build would overwrite the optimised binary that `cargo test` made
//! for the daemon's own tests with an unoptimised one, and `daemon/tests/render.rs` would then run 25×
//! slower.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use ballast_testsupport::{wait_for, Child as Guard, Jackd};
use common::{ballastctl, Bus, Run};

const WAIT: Duration = Duration::from_secs(30);

fn config(threshold_db: i32) -> String {
    format!(
        r#"[engine]
backend = "jack"
client_name = "bctl"

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
threshold_db = {threshold_db}

[links]
chain = ["tone", "meter", "comp", "out"]
"#
    )
}

fn poll<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_for(WAIT, what, f)
}

/// `ballastd` of the test profile, next to `ballastctl` (see the top of this file).
fn ballastd_binary() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_ballastctl"));
    ballast_testsupport::ballastd_binary("test", dir.parent().unwrap())
}

fn scratch(tag: &str) -> PathBuf {
    ballast_testsupport::scratch_in(env!("CARGO_TARGET_TMPDIR"), tag)
}

fn ctl(bus: &Bus, args: &[&str]) -> Run {
    let o = ballastctl().args(args).env("DBUS_SESSION_BUS_ADDRESS", &bus.address).output().unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    }
}

#[test]
fn drives_the_real_daemon_on_jack() {
    let bin = ballastd_binary();
    let home = scratch("ctl-real");
    let jack_name = format!("bctl-{}", std::process::id());
    let _jack = Jackd::start(&jack_name);
    let bus = Bus::start();
    let cfg = home.join("ballast.toml");
    fs::write(&cfg, config(-20)).unwrap();
    let log = home.join("ballastd.log");
    let mut daemon = Guard::spawn(
        Command::new(&bin)
            .args(["--config", cfg.to_str().unwrap()])
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_STATE_HOME", home.join("state"))
            .env("JACK_DEFAULT_SERVER", &jack_name)
            .env("JACK_NO_START_SERVER", "1")
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .env_remove("STATE_DIRECTORY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap()),
    )
    .expect("ballastd starts");
    let daemon_log = || fs::read_to_string(&log).unwrap_or_default();

    // Up: the daemon answers (exit 3 until it owns its name).
    let status = poll("ballastd on the bus", || {
        let r = ctl(&bus, &["status", "--json"]);
        if r.code != 0 {
            assert_eq!(r.code, 3, "before the daemon is up: {} (log: {})", r.stderr, daemon_log());
        }
        // Until the JACK backend has started, the daemon reports no block size yet.
        (r.code == 0).then(|| r.json()).filter(|j| j["block_size"].as_u64().unwrap_or(0) > 0)
    });
    assert_eq!(status["backend"], "jack", "{status}");
    assert_eq!(status["sample_rate_hz"], 48000);
    assert_eq!(status["block_size"], 256);
    assert_eq!(status["nodes"], 3);
    assert!(ctl(&bus, &["status"]).out().contains("backend      jack"));

    let nodes = ctl(&bus, &["nodes", "--json"]).json();
    let names: Vec<&str> = nodes["nodes"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["tone", "meter", "comp"]);

    // Parameters with units, typed errors.
    assert_eq!(ctl(&bus, &["set", "comp.threshold_db", "-18dB"]).out().trim(), "comp.threshold_db = -18 dB");
    assert_eq!(ctl(&bus, &["set", "comp.release_ms", "1.5s"]).out().trim(), "comp.release_ms = 1500 ms");
    assert_eq!(ctl(&bus, &["get", "comp.threshold_db", "--json"]).json()["value"], -18.0);
    ctl(&bus, &["set", "comp.threshold_db", "10dB"]).fails(1, "OutOfRange:");
    ctl(&bus, &["get", "nosuch.x"]).fails(1, "UnknownNode:");
    ctl(&bus, &["get", "comp.nosuch"]).fails(1, "UnknownParam:");
    ctl(&bus, &["preset", "save", "a/b"]).fails(1, "InvalidName:");
    ctl(&bus, &["connect", "comp", "meter"]).fails(1, "InvalidGraph:");

    // Meters: the -20 dB tone, measured by the meter on the JACK thread.
    let momentary = poll("the meter's momentary loudness", || {
        ctl(&bus, &["meters", "--json"]).json()["meters"]["meter"]["momentary_lufs"].as_f64().filter(|v| *v > -40.0)
    });
    assert!(momentary < 0.0, "{momentary}");
    let r = ctl(&bus, &["meters", "--watch", "--json", "--count", "2", "--rate", "20"]);
    assert_eq!(r.out().lines().count(), 2);

    // apply: keep tone and meter, replace comp by a limiter; the meter keeps integrating.
    poll("an integrated loudness", || {
        ctl(&bus, &["meters", "--json"]).json()["meters"]["meter"]["integrated_lufs"].as_f64()
    });
    std::thread::sleep(Duration::from_millis(1500));
    let before = ctl(&bus, &["meters", "--json"]).json()["meters"]["meter"]["integrated_lufs"].as_f64().unwrap();
    let file = home.join("change.toml");
    fs::write(
        &file,
        "[nodes.tone]\nkind = \"tone\"\nfreq_hz = 1000\nlevel_db = -20\n[nodes.meter]\nkind = \"loudness_meter\"\n\
         [nodes.safety]\nkind = \"limiter\"\nceiling_dbtp = -2\n[links]\nchain = [\"tone\", \"meter\", \"safety\", \"out\"]\n",
    )
    .unwrap();
    let out = ctl(&bus, &["apply", file.to_str().unwrap()]).out().to_string();
    assert!(out.starts_with("applied: 2 kept, 1 inserted, 1 removed"), "{out}");
    let after = ctl(&bus, &["meters", "--json"]).json()["meters"]["meter"]["integrated_lufs"].as_f64();
    let after = after.expect("the kept meter still has its integrated loudness");
    assert!((after - before).abs() < 1.0, "integrated {before} before, {after} after");
    assert_eq!(ctl(&bus, &["get", "safety.ceiling_dbtp"]).out().trim(), "-2 dBTP");

    // Presets round trip through the daemon's state dir.
    ctl(&bus, &["preset", "save", "with-limiter"]).out();
    assert_eq!(ctl(&bus, &["preset", "list", "--json"]).json()["presets"], serde_json::json!(["with-limiter"]));
    ctl(&bus, &["set", "safety.ceiling_dbtp", "-4"]).out();
    ctl(&bus, &["preset", "load", "with-limiter"]).out();
    assert_eq!(ctl(&bus, &["get", "safety.ceiling_dbtp"]).out().trim(), "-2 dBTP");
    ctl(&bus, &["preset", "delete", "with-limiter"]).out();
    assert_eq!(ctl(&bus, &["preset", "list"]).out(), "");

    // Reload: the config file again (with a new threshold).
    fs::write(&cfg, config(-30)).unwrap();
    ctl(&bus, &["reload"]).out();
    let names: Vec<String> = ctl(&bus, &["nodes", "--json"]).json()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["tone", "meter", "comp"], "{}", daemon_log());
    assert_eq!(ctl(&bus, &["get", "comp.threshold_db"]).out().trim(), "-30 dB");
    ctl(&bus, &["bypass", "comp", "on"]).out();
    assert_eq!(ctl(&bus, &["nodes", "--json"]).json()["nodes"][2]["bypassed"], true);

    // Stopped: no daemon, exit 3.
    assert_eq!(daemon.stop().and_then(|s| s.code()), Some(0), "{}", daemon_log());
    ctl(&bus, &["status"]).fails(3, "is ballastd running?");
    let _ = fs::remove_dir_all(&home);
}

/// Before its JACK server exists the daemon runs and serves D-Bus, but its block size is unknown: the
/// `Status` reply leaves `block_size` (and the latency made of it) out, `--json` says `null`, the text
/// says `unknown`; once JACK runs, the real 256 appears.
#[test]
fn block_size_is_unknown_until_jack_runs() {
    let bin = ballastd_binary();
    let home = scratch("ctl-nojack");
    let jack_name = format!("bctl-late-{}", std::process::id());
    let bus = Bus::start();
    let cfg = home.join("ballast.toml");
    fs::write(&cfg, config(-20)).unwrap();
    let log = home.join("ballastd.log");
    let _daemon = Guard::spawn(
        Command::new(&bin)
            .args(["--config", cfg.to_str().unwrap()])
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_STATE_HOME", home.join("state"))
            .env("JACK_DEFAULT_SERVER", &jack_name)
            .env("JACK_NO_START_SERVER", "1")
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .env_remove("STATE_DIRECTORY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap()),
    )
    .expect("ballastd starts");
    let status = poll("ballastd on the bus", || {
        let r = ctl(&bus, &["status", "--json"]);
        (r.code == 0).then(|| r.json())
    });
    assert_eq!(status["backend"], "jack", "{status}");
    assert_eq!(status["sample_rate_hz"], 48000, "the config's rate until JACK says otherwise");
    for key in ["block_size", "latency_samples", "latency_ms"] {
        assert!(status[key].is_null(), "{key} unknown before JACK runs: {status}");
    }
    assert_eq!(status["graph_latency_samples"], 0);
    let text = ctl(&bus, &["status"]).out().to_string();
    assert!(text.contains("block size   unknown (the audio backend is not running yet)"), "{text}");
    assert!(text.contains("latency      unknown until the backend runs; graph 0"), "{text}");
    // The D-Bus reply itself: no block_size entry at all.
    let out = Command::new("busctl")
        .args(["--user", "call", "org.ballast.Daemon1", "/org/ballast/Daemon1", "org.ballast.Daemon1", "Status"])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .output()
        .unwrap();
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && reply.contains("\"backend\"") && !reply.contains("block_size"), "{reply}");

    let _jack = Jackd::start(&jack_name);
    let status = poll("the block size once JACK runs", || {
        let j = ctl(&bus, &["status", "--json"]).json();
        j["block_size"].as_u64().map(|_| j)
    });
    assert_eq!(status["block_size"], 256, "{status}");
    assert_eq!(status["latency_samples"], 256, "{status}");
    assert!(ctl(&bus, &["status"]).out().contains("block size   256"));
    let _ = fs::remove_dir_all(&home);
}
