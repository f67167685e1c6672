//! `ballastctl`'s daemon commands through the real binary, against a daemon made of ballastd's own D-Bus
//! service, control API and engine on a real private `dbus-daemon` (see `common`): each command's text
//! and `--json` output, each typed error as exit 1 and one line, no daemon as exit 3, `apply` as one
//! transaction that keeps a surviving node's state, live meters, presets, completions and the man page.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{ballastctl, ctl, ctl_at, wait_for, Bus, Daemon, WAIT};

#[test]
fn status_in_text_and_json() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus, "status");
    let text = ctl(&bus, &["status"]);
    let out = text.out();
    for want in
        ["backend      test", "sample rate  48000 Hz", "block size   256", "version      9.9.9-test", "nodes        3"]
    {
        assert!(out.contains(want), "{want:?} in\n{out}");
    }
    let j = ctl(&bus, &["status", "--json"]).json();
    assert_eq!(j["backend"], "test");
    assert_eq!(j["sample_rate_hz"], 48000);
    assert_eq!(j["block_size"], 256);
    assert_eq!(j["nodes"], 3);
    assert_eq!(j["latency_samples"], 256);
    assert_eq!(j["xruns"], 0);
    assert_eq!(j["version"], "9.9.9-test");
    for key in ["latency_samples", "graph_latency_samples", "latency_ms", "dsp_load_percent", "xruns", "uptime_s"] {
        assert!(j[key].is_number(), "{key} in {j}");
    }
    // --address works as well as the environment.
    let j2 = ctl_at(&bus.address, &["status", "--json"]).json();
    assert_eq!(j2["backend"], "test");
}

#[test]
fn nodes_params_get_set_with_units() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus, "params");
    let out = ctl(&bus, &["nodes"]).out().to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NODE") && lines[0].contains("KIND") && lines[0].contains("BYPASSED"), "{out}");
    assert!(out.contains("comp") && out.contains("compressor") && out.contains("loudness_meter"), "{out}");
    let j = ctl(&bus, &["nodes", "--json"]).json();
    let nodes = j["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    let comp = nodes.iter().find(|n| n["name"] == "comp").unwrap();
    assert_eq!(comp["kind"], "compressor");
    assert_eq!(comp["channels"], 2);
    assert_eq!(comp["bands"], 0);
    assert_eq!(comp["bypassed"], false);
    assert_eq!(comp["path"], "/org/ballast/Daemon1/node/comp");

    let out = ctl(&bus, &["params", "comp"]).out().to_string();
    assert!(out.starts_with("PARAM"), "{out}");
    let threshold = out.lines().find(|l| l.starts_with("threshold_db")).expect("threshold row");
    assert!(threshold.contains("-20 dB"), "{threshold}");
    let j = ctl(&bus, &["params", "comp", "--json"]).json();
    assert_eq!(j["node"], "comp");
    let t = j["params"].as_array().unwrap().iter().find(|p| p["key"] == "threshold_db").unwrap();
    assert_eq!(t["unit"], "dB");
    assert_eq!(t["value"], -20.0);
    for key in ["name", "min", "max", "default", "scale", "doc", "choices", "boolean"] {
        assert!(!t[key].is_null(), "{key} in {t}");
    }

    // Units: each form lands as the number the key's unit names.
    for (args, want, shown) in [
        (vec!["comp.threshold_db", "-18dB"], -18.0, "-18 dB"),
        (vec!["comp.threshold_db", "-17", "dB"], -17.0, "-17 dB"),
        (vec!["comp.threshold_db", "-16 dB"], -16.0, "-16 dB"),
        (vec!["comp.attack_ms", "10ms"], 10.0, "10 ms"),
        (vec!["comp.release_ms", "1.5s"], 1500.0, "1500 ms"),
        (vec!["comp.sidechain_hpf_hz", "0.25k"], 250.0, "250 Hz"),
        (vec!["comp.sidechain_hpf_hz", "0.5kHz"], 500.0, "500 Hz"),
        (vec!["comp.ratio", "4:1"], 4.0, "4:1"),
        (vec!["comp.ratio", "inf"], f64::INFINITY, "inf:1"),
        (vec!["comp.detector", "rms"], 1.0, "rms"),
    ] {
        let mut a = vec!["set"];
        a.extend(&args);
        let out = ctl(&bus, &a).out().to_string();
        let target = args[0];
        assert_eq!(out.trim(), format!("{target} = {shown}"), "set {args:?}");
        let g = ctl(&bus, &["get", target, "--json"]).json();
        if want.is_finite() {
            assert_eq!(g["value"], want, "get {target}: {g}");
        } else {
            assert!(g["value"].is_null(), "inf is null in JSON: {g}");
        }
        assert_eq!(g["text"], shown);
        assert_eq!(ctl(&bus, &["get", target]).out().trim(), shown);
    }
    let g = ctl(&bus, &["get", "comp.threshold_db", "--json"]).json();
    assert_eq!(
        (g["node"].as_str(), g["param"].as_str(), g["unit"].as_str()),
        (Some("comp"), Some("threshold_db"), Some("dB"))
    );

    // A node name with a dot in it.
    assert_eq!(ctl(&bus, &["set", "my-gain.stage.ratio", "3"]).out().trim(), "my-gain.stage.ratio = 3:1");
    assert_eq!(ctl(&bus, &["get", "my-gain.stage.ratio"]).out().trim(), "3:1");

    // A wrong unit is a usage error, named, and nothing is sent.
    ctl(&bus, &["set", "comp.threshold_db", "10ms"]).fails(2, "comp.threshold_db takes dB, but \"10ms\" is in ms");
    ctl(&bus, &["set", "comp.attack_ms", "2.5kHz"]).fails(2, "takes ms (or s)");
    ctl(&bus, &["get", "comp"]).fails(2, "not NODE.PARAM");
    assert_eq!(ctl(&bus, &["get", "comp.threshold_db"]).out().trim(), "-16 dB");
}

#[test]
fn each_daemon_error_is_one_line_and_exit_1() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus, "errors");
    ctl(&bus, &["get", "nosuch.threshold_db"]).fails(1, "UnknownNode: no node named \"nosuch\"; nodes: meter, comp");
    ctl(&bus, &["params", "nosuch"]).fails(1, "UnknownNode: no node named \"nosuch\"");
    ctl(&bus, &["set", "nosuch.ratio", "2"]).fails(1, "UnknownNode:");
    ctl(&bus, &["bypass", "nosuch", "on"]).fails(1, "UnknownNode:");
    ctl(&bus, &["get", "comp.nosuch"]).fails(1, "UnknownParam: node comp (compressor) has no parameter \"nosuch\"");
    ctl(&bus, &["set", "comp.nosuch", "1"]).fails(1, "UnknownParam:");
    ctl(&bus, &["set", "comp.threshold_db", "10dB"]).fails(1, "OutOfRange: comp.threshold_db = 10 is out of range");
    ctl(&bus, &["set", "comp.threshold_db", "nan"]).fails(2, "takes a number");
    ctl(&bus, &["preset", "save", "../escape"]).fails(1, "InvalidName:");
    ctl(&bus, &["preset", "load", "never-saved"]).fails(1, "Failed:");
    // A link that closes a loop.
    ctl(&bus, &["connect", "my-gain.stage", "meter"]).fails(1, "InvalidGraph:");
    ctl(&bus, &["disconnect", "meter", "my-gain.stage"])
        .fails(1, "InvalidGraph: no link from `meter` to `my-gain.stage`");
    // Nothing of that changed the graph, and no transaction was left open.
    assert_eq!(ctl(&bus, &["nodes", "--json"]).json()["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(ctl(&bus, &["get", "comp.threshold_db"]).out().trim(), "-20 dB");
}

#[test]
fn no_daemon_is_exit_3() {
    // A bus with nobody on it.
    let bus = Bus::start();
    let r = ctl(&bus, &["status"]);
    r.fails(3, "is ballastd running? start it with `ballastd`");
    assert!(r.stderr.contains("org.ballast.Daemon1"), "{}", r.stderr);
    // No bus at all.
    let r = ctl_at("unix:path=/nonexistent/ballast-bus", &["nodes"]);
    r.fails(3, "cannot reach the bus at unix:path=/nonexistent/ballast-bus");
    assert!(r.stderr.contains("is ballastd running?"), "{}", r.stderr);
    let r = ballastctl()
        .args(["status", "--system"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/sys")
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(3), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stderr).contains("the system bus"));
    // A usage error is 2 (clap's own).
    let r = ballastctl().args(["frobnicate"]).output().unwrap();
    assert_eq!(r.status.code(), Some(2));
}

#[test]
fn bypass_connect_disconnect_reload() {
    let bus = Bus::start();
    let d = Daemon::start(&bus, "graph");
    assert_eq!(ctl(&bus, &["bypass", "comp"]).out().trim(), "comp: bypass on");
    let bypassed = |name: &str| -> bool {
        let j = ctl(&bus, &["nodes", "--json"]).json();
        j["nodes"].as_array().unwrap().iter().find(|n| n["name"] == name).unwrap()["bypassed"].as_bool().unwrap()
    };
    assert!(bypassed("comp"));
    assert!(ctl(&bus, &["nodes"]).out().lines().any(|l| l.starts_with("comp") && l.ends_with("yes")));
    assert_eq!(ctl(&bus, &["bypass", "comp", "off"]).out().trim(), "comp: bypass off");
    assert!(!bypassed("comp"));

    // Take the last stage off the output and put it back: each one transaction.
    let out = ctl(&bus, &["disconnect", "my-gain.stage", "out"]).out().to_string();
    assert!(out.starts_with("applied: 3 kept, 0 inserted, 0 removed"), "{out}");
    let out = ctl(&bus, &["connect", "my-gain.stage", "out"]).out().to_string();
    assert!(out.starts_with("applied: 3 kept, 0 inserted, 0 removed"), "{out}");
    let silent = d.silent_blocks.load(Ordering::Relaxed);
    d.wait_blocks(40);
    assert_eq!(d.silent_blocks.load(Ordering::Relaxed), silent, "reconnected: the output carries audio again");

    ctl(&bus, &["set", "comp.threshold_db", "-30"]).out();
    assert_eq!(ctl(&bus, &["reload"]).out().trim(), "reloaded the config");
    assert_eq!(ctl(&bus, &["get", "comp.threshold_db"]).out().trim(), "-20 dB");
}

#[test]
fn apply_replaces_half_the_graph_in_one_transaction() {
    let bus = Bus::start();
    let d = Daemon::start(&bus, "apply");
    let dir = std::env::temp_dir().join(format!("ballastctl-apply-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // meter and comp stay (comp with a new threshold), my-gain.stage goes, a limiter comes.
    let file = dir.join("new.toml");
    std::fs::write(
        &file,
        r#"
[ports]
audio_in = ["in_l", "in_r"]
audio_out = ["out_l", "out_r"]
[nodes.meter]
kind = "loudness_meter"
[nodes.comp]
kind = "compressor"
threshold_db = -25
detector = "rms"
[nodes.safety]
kind = "limiter"
ceiling_dbtp = -1.0
[links]
chain = ["in", "meter", "comp", "safety", "out"]
"#,
    )
    .unwrap();
    let file = file.to_str().unwrap();

    let plan = ctl(&bus, &["apply", "--dry-run", file]).out().to_string();
    assert!(plan.contains("RemoveNode my-gain.stage") && plan.contains("AddNode safety (limiter)"), "{plan}");
    assert!(plan.contains("Connect comp -> safety"), "{plan}");
    assert_eq!(ctl(&bus, &["nodes", "--json"]).json()["nodes"].as_array().unwrap().len(), 3, "dry run: no change");

    // Let the loudness meter integrate ~2 s of the -10 dBFS sine, then apply.
    wait_for("an integrated loudness", || {
        let m = ctl(&bus, &["meters", "--json"]).json();
        m["meters"]["meter"]["integrated_lufs"].as_f64().is_some_and(|v| v.is_finite())
    });
    d.wait_blocks((2.0 * common::RATE / common::BLOCK as f64) as u64);
    let before = ctl(&bus, &["meters", "--json"]).json()["meters"]["meter"]["integrated_lufs"].as_f64().unwrap();
    let silent = d.silent_blocks.load(Ordering::Relaxed);
    let t = Instant::now();
    let out = ctl(&bus, &["apply", file]).out().to_string();
    assert!(out.starts_with("applied: 2 kept, 1 inserted, 1 removed"), "{out}");
    let after = ctl(&bus, &["meters", "--json"]).json()["meters"]["meter"]["integrated_lufs"].as_f64();
    // A meter made anew would read nothing (null) for its first 400 ms; the kept one goes on integrating.
    let after = after.unwrap_or_else(|| panic!("integrated loudness lost by the apply ({:?} after)", t.elapsed()));
    assert!((after - before).abs() < 1.0, "integrated {before} LUFS before, {after} after: the meter kept its state");
    let names: Vec<String> = ctl(&bus, &["nodes", "--json"]).json()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["meter", "comp", "safety"]);
    assert_eq!(ctl(&bus, &["get", "comp.threshold_db"]).out().trim(), "-25 dB");
    assert_eq!(ctl(&bus, &["get", "comp.detector"]).out().trim(), "rms");
    assert_eq!(ctl(&bus, &["get", "safety.ceiling_dbtp"]).out().trim(), "-1 dBTP");
    d.wait_blocks(40);
    assert_eq!(d.silent_blocks.load(Ordering::Relaxed), silent, "the audio never stopped");

    // An invalid file graph (a loop) is refused as a whole: nothing changes.
    let bad = dir.join("loop.toml");
    std::fs::write(
        &bad,
        "[nodes.a]\nkind = \"compressor\"\n[nodes.b]\nkind = \"compressor\"\n[links]\nchain = [\"in\", \"a\", \"b\", \"a\"]\nedges = [[\"b\", \"out\"]]\n",
    )
    .unwrap();
    ctl(&bus, &["apply", bad.to_str().unwrap()]).fails(1, "InvalidGraph:");
    assert_eq!(ctl(&bus, &["nodes", "--json"]).json()["nodes"].as_array().unwrap().len(), 3);
    // A file that does not parse is a usage error; a missing one an I/O error.
    let broken = dir.join("broken.toml");
    std::fs::write(&broken, "[nodes.a]\nkind = \"nosuch\"\n").unwrap();
    ctl(&bus, &["apply", broken.to_str().unwrap()]).fails(2, "unknown kind \"nosuch\"");
    ctl(&bus, &["apply", dir.join("missing.toml").to_str().unwrap()]).fails(4, "missing.toml");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn meters_once_and_watch() {
    let bus = Bus::start();
    let d = Daemon::start(&bus, "meters");
    // A full 400 ms momentary window and then some.
    d.wait_blocks((common::RATE / common::BLOCK as f64) as u64);
    let j = ctl(&bus, &["meters", "--json"]).json();
    let m = &j["meters"];
    // A -10 dBFS 1 kHz sine on both channels: about -10 LUFS momentary (+3 dB for two channels, -3 dB
    // for a sine's RMS, K-weighting ~0 at 1 kHz).
    let momentary = m["meter"]["momentary_lufs"].as_f64().unwrap();
    assert!((momentary + 10.0).abs() < 1.5, "momentary {momentary} LUFS");
    assert!(m["meter"]["true_peak_dbtp"].as_f64().is_some());
    assert!(m["comp"]["gain_reduction_db"].as_f64().is_some(), "{m}");
    let text = ctl(&bus, &["meters"]).out().to_string();
    assert!(text.lines().any(|l| l == "meter"), "{text}");
    let line = text.lines().find(|l| l.trim_start().starts_with("momentary_lufs")).unwrap();
    assert!(line.contains("[") && line.contains("#") && line.ends_with("LUFS"), "{line}");

    // Live, as JSON lines.
    let r = ctl(&bus, &["meters", "--watch", "--json", "--rate", "20", "--count", "3"]);
    let lines: Vec<&str> = r.out().lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["meters"]["meter"]["momentary_lufs"].is_number(), "{l}");
    }
    // Live bars: drawn in place (cursor hidden, moved up to redraw), cursor shown again at the end.
    let r = ctl(&bus, &["meters", "--watch", "--rate", "20", "--count", "3"]);
    let out = r.out();
    assert!(out.starts_with("\x1b[?25l"), "{out:?}");
    assert!(out.ends_with("\x1b[?25h"), "{out:?}");
    assert_eq!(out.matches("A\r").count(), 2, "two redraws over the first frame: {out:?}");
    // Ctrl-C: exits 0 and restores the cursor.
    let mut child = ballastctl()
        .args(["meters", "--watch", "--rate", "10"])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    let n = stdout.read(&mut first).unwrap();
    assert!(n > 0);
    // SAFETY: kill(2) of the child this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < WAIT, "meters --watch did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    assert!(rest.ends_with(b"\x1b[?25h"), "cursor restored: {:?}", String::from_utf8_lossy(&rest));
}

#[test]
fn preset_round_trip() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus, "presets");
    assert_eq!(ctl(&bus, &["preset", "list"]).out(), "");
    assert_eq!(ctl(&bus, &["preset", "list", "--json"]).json(), serde_json::json!({"presets": []}));
    ctl(&bus, &["set", "comp.threshold_db", "-33dB"]).out();
    ctl(&bus, &["bypass", "my-gain.stage", "on"]).out();
    assert_eq!(ctl(&bus, &["preset", "save", "evening"]).out().trim(), "saved preset evening");
    ctl(&bus, &["preset", "save", "morning.v2"]).out();
    assert_eq!(ctl(&bus, &["preset", "list"]).out(), "evening\nmorning.v2\n");
    assert_eq!(
        ctl(&bus, &["preset", "list", "--json"]).json(),
        serde_json::json!({"presets": ["evening", "morning.v2"]})
    );
    ctl(&bus, &["set", "comp.threshold_db", "-5"]).out();
    ctl(&bus, &["bypass", "my-gain.stage", "off"]).out();
    assert_eq!(ctl(&bus, &["preset", "load", "evening"]).out().trim(), "loaded preset evening");
    assert_eq!(ctl(&bus, &["get", "comp.threshold_db"]).out().trim(), "-33 dB");
    let j = ctl(&bus, &["nodes", "--json"]).json();
    let stage = j["nodes"].as_array().unwrap().iter().find(|n| n["name"] == "my-gain.stage").unwrap().clone();
    assert_eq!(stage["bypassed"], true);
    assert_eq!(ctl(&bus, &["preset", "delete", "evening"]).out().trim(), "deleted preset evening");
    assert_eq!(ctl(&bus, &["preset", "list"]).out(), "morning.v2\n");
    ctl(&bus, &["preset", "delete", "evening"]).fails(1, "Failed:");
}

#[test]
fn completions_and_man_page_generate() {
    for shell in ["bash", "zsh", "fish"] {
        let o = ballastctl().args(["completions", shell]).output().unwrap();
        assert!(o.status.success(), "{shell}");
        let s = String::from_utf8_lossy(&o.stdout);
        for word in ["ballastctl", "status", "meters", "preset", "json", "watch"] {
            assert!(s.contains(word), "{shell} completion lacks {word}");
        }
    }
    let o = ballastctl().arg("man").output().unwrap();
    assert!(o.status.success());
    let man = String::from_utf8_lossy(&o.stdout);
    assert!(man.starts_with(".ie") || man.contains(".TH ballastctl"), "{}", &man[..200.min(man.len())]);
    for word in ["status", "apply", "preset", "Exit codes", "UnknownNode"] {
        assert!(man.contains(word), "man page lacks {word}");
    }
    let help = ballastctl().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for code in ["0  success", "1  the daemon refused", "2  wrong command line", "3  no daemon", "4  I/O"] {
        assert!(help.contains(code), "--help lacks {code:?}");
    }
}

#[test]
fn events_follow_other_clients() {
    let bus = Bus::start();
    let _d = Daemon::start(&bus, "events");
    let mut child = ballastctl()
        .args(["events", "--json"])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = || -> serde_json::Value {
        let l = rx.recv_timeout(WAIT).expect("an event line");
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"))
    };
    // Until the listener is subscribed, changes pass unseen: repeat one until it shows.
    let t = Instant::now();
    let first = loop {
        ctl(&bus, &["set", "comp.threshold_db", "-21"]).out();
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(300)) {
            break l;
        }
        assert!(t.elapsed() < WAIT, "events never showed a change");
    };
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"event": "param-changed", "node": "comp", "param": "threshold_db", "value": -21.0})
    );
    // Another client's graph change, then a parameter of a node whose name has a dot.
    ctl(&bus, &["disconnect", "my-gain.stage", "out"]).out();
    let mut v = next();
    while v["param"] == "threshold_db" {
        v = next(); // a repeat of the first change, sent before the first line was read
    }
    assert_eq!(v, serde_json::json!({"event": "graph-changed"}));
    ctl(&bus, &["set", "my-gain.stage.ratio", "2"]).out();
    assert_eq!(
        next(),
        serde_json::json!({"event": "param-changed", "node": "my-gain.stage", "param": "ratio", "value": 2.0})
    );
    // Ctrl-C ends it cleanly.
    // SAFETY: kill(2) of the child this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
