//! The systemd units pass `systemd-analyze verify`, system and user mode, without a single warning.
//!
//! `verify` fails when ExecStart= names a missing binary, so each unit is checked as a copy whose
//! ExecStart= points at the ballastd this test run built.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const UNITS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../systemd");
const BALLASTD: &str = env!("CARGO_BIN_EXE_ballastd");

fn systemd_analyze() -> PathBuf {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("systemd-analyze")).find(|f| f.is_file()))
        .unwrap_or_default();
    found.unwrap_or_else(|| {
        panic!(
            "systemd-analyze not found in PATH; it checks the units. Install it with scripts/install-deps.sh \
             (Debian package `systemd`: apt-get install systemd)"
        )
    })
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("units-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("runtime")).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The `.service` files shipped in systemd/.
fn units() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(UNITS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no units in {UNITS}");
    v
}

/// `text` with every ExecStart= of ballastd pointing at the binary built for this test.
fn with_built_binary(text: &str) -> String {
    let mut replaced = 0;
    let out: Vec<String> = text
        .lines()
        .map(|l| match l.strip_prefix("ExecStart=") {
            Some(cmd) if cmd.split_whitespace().next().is_some_and(|b| b.ends_with("/ballastd")) => {
                replaced += 1;
                let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
                format!("ExecStart={BALLASTD} {}", args.join(" ")).trim_end().to_string()
            }
            _ => l.to_string(),
        })
        .collect();
    assert_eq!(replaced, 1, "expected one ExecStart= of ballastd");
    out.join("\n") + "\n"
}

/// Runs `systemd-analyze [--user] verify unit`; returns (success, stdout+stderr).
fn verify(tmp: &TempDir, unit: &Path, user: bool) -> (bool, String, String) {
    let mut c = Command::new(systemd_analyze());
    if user {
        // The user manager's lookup needs a runtime directory; an empty private one will do.
        c.arg("--user").env("XDG_RUNTIME_DIR", tmp.0.join("runtime"));
    }
    let out = c.arg("verify").arg(unit).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn units_verify_without_warnings() {
    let tmp = TempDir::new("verify");
    for unit in units() {
        let name = unit.file_name().unwrap();
        let copy = tmp.0.join(name);
        fs::write(&copy, with_built_binary(&fs::read_to_string(&unit).unwrap())).unwrap();
        for user in [true, false] {
            let (ok, stdout, stderr) = verify(&tmp, &copy, user);
            let mode = if user { "--user" } else { "system" };
            assert!(ok, "{} ({mode}): verify failed:\n{stdout}{stderr}", unit.display());
            assert!(stderr.is_empty(), "{} ({mode}): warnings:\n{stderr}", unit.display());
        }
    }
}

#[test]
fn verify_catches_what_it_should() {
    // The check above has teeth: an unknown key only warns (exit 0, stderr), a missing binary fails.
    let tmp = TempDir::new("teeth");
    let unit = units().into_iter().find(|u| u.ends_with("ballastd.service")).unwrap();
    let good = with_built_binary(&fs::read_to_string(unit).unwrap());

    let typo = tmp.0.join("typo.service");
    fs::write(&typo, good.replace("WatchdogSec=", "WatchDogSec=")).unwrap();
    let (ok, _, stderr) = verify(&tmp, &typo, true);
    assert!(ok && stderr.contains("WatchDogSec"), "unknown key should warn: {stderr}");

    let missing = tmp.0.join("missing.service");
    fs::write(&missing, good.replace(BALLASTD, "/nonexistent/ballastd")).unwrap();
    let (ok, stdout, stderr) = verify(&tmp, &missing, true);
    assert!(!ok, "missing binary should fail: {stdout}{stderr}");
}

/// `key=value` settings of a unit, comments and section headers dropped.
fn settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn user_unit_has_what_the_daemon_needs() {
    let text = fs::read_to_string(Path::new(UNITS).join("ballastd.service")).unwrap();
    let s = settings(&text);
    let get = |k: &str| s.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    assert_eq!(get("Type"), Some("notify"));
    assert_eq!(get("NotifyAccess"), Some("main"));
    assert_eq!(get("Restart"), Some("on-failure"));
    assert_eq!(get("ExecReload"), Some("/bin/kill -HUP $MAINPID"));
    assert!(get("WatchdogSec").is_some());
    assert_eq!(get("LimitRTPRIO"), Some("95"));
    assert_eq!(get("LimitMEMLOCK"), Some("infinity"));
    assert_eq!(get("StateDirectory"), Some("ballast"));
    // What would break JACK or the audio thread.
    assert_ne!(get("RestrictRealtime"), Some("yes"), "SCHED_FIFO must stay allowed");
    assert_ne!(get("PrivateDevices"), Some("yes"), "would replace /dev/shm (JACK) and hide /dev/snd");
    assert_ne!(get("MemoryDenyWriteExecute"), Some("yes"));
}

/// The D-Bus activation files name the daemon's bus name and a unit that exists, and start the same
/// binary with the bus the unit serves on.
#[test]
fn dbus_activation_files_match_the_units() {
    for (file, unit, flag) in [
        ("dbus/org.ballast.Daemon1.service", "ballastd.service", None),
        ("dbus/system/org.ballast.Daemon1.service", "ballastd-system.service", Some("--system")),
    ] {
        let text = fs::read_to_string(Path::new(UNITS).join(file)).unwrap();
        let keys = settings(&text);
        let get = |k: &str| keys.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(get("Name").as_deref(), Some(ballastd::dbus::BUS_NAME), "{file}");
        assert_eq!(get("SystemdService").as_deref(), Some("ballastd.service"), "{file}: installed name");
        assert!(Path::new(UNITS).join(unit).exists(), "{file}: {unit} is missing");
        let exec = get("Exec").unwrap();
        assert!(exec.starts_with("/usr/local/bin/ballastd"), "{file}: {exec}");
        let unit_text = fs::read_to_string(Path::new(UNITS).join(unit)).unwrap();
        let unit_exec = settings(&unit_text).into_iter().find(|(k, _)| k == "ExecStart").unwrap().1;
        assert_eq!(exec, unit_exec, "{file}: Exec= must start what the unit starts");
        assert_eq!(exec.contains("--system"), flag.is_some(), "{file}");
    }
}
