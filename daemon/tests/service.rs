//! `ballastd` as a service, end to end: a real JACK dummy server, the real binary, real signals, real
//! files. What a user sees is the JACK ports, the log, the exit status and the state file.

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::{scratch, Daemon, Jackd};
use nix::sys::signal::Signal;

fn config_text(client: &str, ceiling: f64) -> String {
    format!(
        r#"[engine]
backend = "jack"
client_name = "{client}"

[ports]
audio_in = ["in_l", "in_r"]
audio_out = ["out_l", "out_r"]

[nodes.limit]
kind = "limiter"
ceiling_dbtp = {ceiling:.1}

[links]
chain = ["in", "limit", "out"]
"#
    )
}

fn state_json(home: &Path) -> serde_json::Value {
    let text = fs::read_to_string(home.join("state/ballast/state.json")).expect("state.json exists");
    serde_json::from_str(&text).expect("state.json is JSON")
}

#[test]
fn runs_on_jack_reloads_on_sighup_and_stops_on_sigterm() {
    let home = scratch("svc-run");
    let jack = Jackd::start("bsvc-run");
    let cfg = home.join("ballast.toml");
    fs::write(&cfg, config_text("svc", -1.0)).unwrap();
    let mut d = Daemon::start(&home, &["--config", cfg.to_str().unwrap()], &[("JACK_DEFAULT_SERVER", &jack.name)]);

    jack.wait_ports(&["svc:in_l", "svc:in_r", "svc:out_l", "svc:out_r"]);
    let said = d.wait_log("(from --config)", 0);
    assert!(said.contains(cfg.to_str().unwrap()), "{said}");

    // A valid change: applied in place, the limiter kept (its state intact).
    fs::write(&cfg, config_text("svc", -2.0)).unwrap();
    d.signal(Signal::SIGHUP);
    let line = d.wait_log("reloaded", 0);
    assert!(line.contains("1 nodes kept") && line.contains("1 parameter changes"), "{line}");

    // An invalid one: every error with file:line:col, the graph untouched, the daemon still running.
    fs::write(&cfg, config_text("svc", -2.0).replace("ceiling_dbtp", "celing_dbtp")).unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_log("reload rejected", 0);
    let log = d.log_text();
    let at = format!("{}:11:1: error: unknown key `celing_dbtp`", cfg.display());
    assert!(log.contains(&at), "wanted `{at}` in the log:\n{log}");
    assert!(log.contains("did you mean `ceiling_dbtp`"), "{log}");
    assert!(d.alive());
    jack.wait_ports(&["svc:out_l", "svc:out_r"]);

    d.signal(Signal::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}; log:\n{}", d.log_text());
    assert!(d.log_text().contains("stopped"));
    // The state holds what ran last: the reloaded ceiling.
    let state = state_json(&home);
    let text = state.to_string();
    assert!(text.contains("ceiling_dbtp") && text.contains("-2"), "{text}");
    // No ANSI colours in a log that is not a terminal.
    assert!(!d.log_text().contains('\u{1b}'), "ANSI escapes in a piped log");
}

#[test]
fn finds_the_user_config_and_restores_state_after_a_crash() {
    let home = scratch("svc-xdg");
    let jack = Jackd::start("bsvc-xdg");
    fs::create_dir_all(home.join("config/ballast")).unwrap();
    fs::write(home.join("config/ballast/ballast.toml"), config_text("xdg", -1.5)).unwrap();

    let mut d = Daemon::start(&home, &[], &[("JACK_DEFAULT_SERVER", &jack.name)]);
    jack.wait_ports(&["xdg:out_l"]);
    let said = d.wait_log("(user config)", 0);
    assert!(said.contains("config/ballast/ballast.toml"), "{said}");
    common::wait_for(Duration::from_secs(10), "the first state save", || {
        home.join("state/ballast/state.json").exists().then_some(())
    });

    // kill -9: no clean shutdown; the state file written at start must still be whole.
    d.signal(Signal::SIGKILL);
    d.wait_exit(Duration::from_secs(5));
    common::wait_for(Duration::from_secs(10), "the old client to leave", || {
        jack.ports().filter(|p| !p.iter().any(|n| n.starts_with("xdg:"))).map(|_| ())
    });

    let mut again = Daemon::start(&home, &[], &[("JACK_DEFAULT_SERVER", &jack.name)]);
    again.wait_log("restored run-time state", 0);
    jack.wait_ports(&["xdg:out_l"]);
    again.signal(Signal::SIGINT);
    assert!(again.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn keeps_running_without_a_jack_server_and_connects_when_one_appears() {
    let home = scratch("svc-wait");
    let name = "bsvc-wait".to_string();
    let cfg = home.join("ballast.toml");
    fs::write(&cfg, config_text("late", -1.0)).unwrap();
    let mut d = Daemon::start(&home, &["--config", cfg.to_str().unwrap()], &[("JACK_DEFAULT_SERVER", &name)]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(d.alive(), "ballastd must wait for JACK, not exit; log:\n{}", d.log_text());

    let jack = Jackd::start(&name);
    jack.wait_ports(&["late:in_l", "late:out_r"]);
    // The server dies and comes back: the daemon re-registers its ports.
    jack.kill();
    std::thread::sleep(Duration::from_millis(500));
    let jack = Jackd::start(&name);
    jack.wait_ports(&["late:in_l", "late:out_r"]);
    assert!(d.alive());
    d.signal(Signal::SIGTERM);
    assert!(d.wait_exit(Duration::from_secs(10)).success(), "{}", d.log_text());
}

#[test]
fn an_invalid_config_stops_the_start_with_positions() {
    let home = scratch("svc-bad");
    let cfg = home.join("bad.toml");
    fs::write(&cfg, "[engine]\nbackend = \"jak\"\n").unwrap();
    let mut d = Daemon::start(&home, &["--config", cfg.to_str().unwrap()], &[]);
    let status = d.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1));
    let log = d.log_text();
    assert!(log.contains(&format!("{}:2:11: error: unknown backend \"jak\"", cfg.display())), "{log}");
    assert!(log.contains("cannot start"), "{log}");
}

/// The ALSA backend end to end: the daemon's playback goes through alsa-lib's `file` plugin into a
/// FIFO this test drains (the pipe paces the loop; there is no sound card), and the audio in it is the
/// config's tone at its level.
#[test]
fn runs_on_alsa_through_a_file_plugin() {
    use std::io::Read;
    let home = scratch("svc-alsa");
    let fifo = home.join("out.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let asound = home.join("asound.conf");
    fs::write(
        &asound,
        format!(
            "</usr/share/alsa/alsa.conf>\npcm.ballast_svc {{ type file; slave {{ pcm {{ type null }} }}; file \"{}\"; format \"raw\" }}\n",
            fifo.display()
        ),
    )
    .unwrap();
    let cfg = home.join("alsa.toml");
    fs::write(
        &cfg,
        r#"[engine]
backend = "alsa"
device = "ballast_svc"
sample_rate_hz = 48000
block_size = 256
periods = 2

[ports]
audio_out = ["out_l", "out_r"]

[nodes.tone]
kind = "tone"
freq_hz = 1000
level_db = -6
channels = 2

[links]
chain = ["tone", "out"]
"#,
    )
    .unwrap();
    let mut d =
        Daemon::start(&home, &["--config", cfg.to_str().unwrap()], &[("ALSA_CONFIG_PATH", asound.to_str().unwrap())]);

    // Opening the read end blocks until the daemon opens the device; then read 1 s of stereo f32.
    let mut reader = fs::File::open(&fifo).unwrap();
    let mut bytes = vec![0u8; 48_000 * 2 * 4];
    reader.read_exact(&mut bytes).unwrap();
    let samples: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    // Skip the silent primer and the first blocks; the tone's peak is -6 dBFS (0.501) on both channels.
    let tail = &samples[samples.len() / 2..];
    let peak = tail.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!((peak - 0.501).abs() < 0.01, "peak {peak}, wanted 0.501 (-6 dBFS)");
    d.wait_log("graph ready", 0);

    // Keep draining while it stops: a full pipe would hold its audio thread in write().
    let drain = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
    });
    d.signal(Signal::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}; log:\n{}", d.log_text());
    drain.join().unwrap();
    assert!(d.log_text().contains("alsa backend stopped"), "{}", d.log_text());
}

#[test]
fn an_alsa_device_that_does_not_exist_is_a_clear_start_error() {
    let home = scratch("svc-alsa-bad");
    let cfg = home.join("alsa.toml");
    fs::write(&cfg, "[engine]\nbackend = \"alsa\"\ndevice = \"ballast_no_such_pcm\"\n[ports]\naudio_out = [\"o\"]\n[nodes.t]\nkind = \"tone\"\n[links]\nchain = [\"t\", \"out\"]\n").unwrap();
    let mut d = Daemon::start(&home, &["--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(1));
    let log = d.log_text();
    assert!(log.contains("cannot start: ALSA backend") && log.contains("ballast_no_such_pcm"), "{log}");
}

/// `busctl call` of a root-object method: (success, stdout, stderr).
fn call(bus: &common::Bus, method: &str, args: &[&str]) -> (bool, String, String) {
    // `--` so that a negative number among the arguments is not taken for an option.
    let mut all = vec!["--", "call", "org.ballast.Daemon1", "/org/ballast/Daemon1", "org.ballast.Daemon1", method];
    all.extend_from_slice(args);
    bus.busctl(&all)
}

/// The real daemon on a private session bus: status and a parameter change through `busctl`, the
/// change in the state file, a second daemon refused with one line, `--replace` taking over.
#[test]
fn serves_dbus_and_hands_the_name_over_on_replace() {
    let home = scratch("svc-dbus");
    let jack = Jackd::start("bsvc-dbus");
    let bus = common::Bus::start();
    let cfg = home.join("ballast.toml");
    fs::write(&cfg, config_text("dbus", -1.0)).unwrap();
    let env = [("JACK_DEFAULT_SERVER", jack.name.as_str()), ("DBUS_SESSION_BUS_ADDRESS", bus.address.as_str())];
    let mut first = Daemon::start(&home, &["--config", cfg.to_str().unwrap()], &env);
    first.wait_log("serving org.ballast.Daemon1", 0);
    jack.wait_ports(&["dbus:out_l"]);

    let (ok, out, err) = call(&bus, "Status", &[]);
    assert!(ok, "{err}");
    assert!(out.contains("jack") && out.contains("48000"), "{out}");
    let (ok, _, err) = call(&bus, "Set", &["ssd", "limit", "ceiling_dbtp", "-3.5"]);
    assert!(ok, "{err}");
    let (ok, out, _) = call(&bus, "Get", &["ss", "limit", "ceiling_dbtp"]);
    assert!(ok && out.trim() == "d -3.5", "{out}");
    // A typed error with a message.
    let (ok, _, err) = call(&bus, "Set", &["ssd", "limit", "ceiling_dbtp", "40"]);
    assert!(!ok && err.contains("out of range"), "{err}");
    // The change reaches the state file as soon as the daemon has answered (no restart, no SIGTERM).
    common::wait_for(Duration::from_secs(10), "the change in state.json", || {
        state_json(&home).to_string().contains("-3.5").then_some(())
    });

    // A second daemon on the same bus: one friendly line, exit 1, the first untouched.
    let mut second = Daemon::start(&home, &["--config", cfg.to_str().unwrap()], &env);
    assert_eq!(second.wait_exit(Duration::from_secs(10)).code(), Some(1));
    assert!(second.log_text().contains("another ballastd is running"), "{}", second.log_text());
    assert!(first.alive());

    // --replace: the first one stops cleanly, the new one serves.
    let mut third = Daemon::start(&home, &["--config", cfg.to_str().unwrap(), "--replace"], &env);
    assert!(first.wait_exit(Duration::from_secs(15)).success(), "{}", first.log_text());
    assert!(first.log_text().contains("took over"), "{}", first.log_text());
    third.wait_log("serving org.ballast.Daemon1", 0);
    // The state the first one saved (with -3.5) is what the third restored.
    third.wait_log("restored run-time state", 0);
    let (ok, out, _) = call(&bus, "Get", &["ss", "limit", "ceiling_dbtp"]);
    assert!(ok && out.trim() == "d -3.5", "{out}");
    third.signal(Signal::SIGTERM);
    assert!(third.wait_exit(Duration::from_secs(10)).success());
}
