//! `meters`: every node's meters once (`Meters`), or live (`--watch`: `SubscribeMeters` and the
//! `MetersUpdate` signals, drawn as bars redrawn in place until Ctrl-C, which restores the terminal).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;

use crate::client::{Client, CtlError};
use crate::units::format_number;

pub type Readings = BTreeMap<String, BTreeMap<String, f64>>;

fn sorted(m: HashMap<String, HashMap<String, f64>>) -> Readings {
    m.into_iter().map(|(n, v)| (n, v.into_iter().collect())).collect()
}

pub fn json(r: &Readings) -> String {
    serde_json::to_string_pretty(&json!({ "meters": r })).unwrap_or_default() + "\n"
}

const BAR: usize = 30;

/// The range a meter's bar spans, by its key's unit.
fn bar_range(key: &str) -> (f64, f64) {
    if key.ends_with("gain_reduction_db") {
        (0.0, 24.0)
    } else if key.ends_with("_lu") {
        (0.0, 30.0)
    } else if key.ends_with("_lufs") || key.ends_with("_dbtp") || key.ends_with("_dbfs") || key.ends_with("_db") {
        (-60.0, 0.0)
    } else {
        (0.0, 100.0)
    }
}

fn unit(key: &str) -> &'static str {
    for (s, u) in [("_lufs", "LUFS"), ("_lu", "LU"), ("_dbtp", "dBTP"), ("_dbfs", "dBFS"), ("_db", "dB")] {
        if key.ends_with(s) {
            return u;
        }
    }
    ""
}

fn bar(key: &str, v: f64) -> String {
    let (lo, hi) = bar_range(key);
    // Gain reduction may be reported as a negative gain: its size is what the bar shows.
    let x = if key.ends_with("gain_reduction_db") { v.abs() } else { v };
    let filled = if x.is_finite() { (((x - lo) / (hi - lo)).clamp(0.0, 1.0) * BAR as f64).round() as usize } else { 0 };
    format!("[{}{}]", "#".repeat(filled), " ".repeat(BAR - filled))
}

/// Text lines: the node, then one line per meter with a bar and the number.
pub fn lines(r: &Readings) -> Vec<String> {
    let width = r.values().flat_map(|m| m.keys()).map(|k| k.len()).max().unwrap_or(0);
    let mut out = Vec::new();
    for (node, meters) in r {
        out.push(node.clone());
        for (key, v) in meters {
            let n = if v.is_nan() { "-".to_string() } else { format!("{} {}", format_number(round1(*v)), unit(key)) };
            out.push(format!("  {key:<width$} {} {}", bar(key, *v), n.trim_end()));
        }
    }
    out
}

fn round1(v: f64) -> f64 {
    if v.is_finite() {
        (v * 10.0).round() / 10.0
    } else {
        v
    }
}

pub fn once(client: &Client, as_json: bool) -> Result<String, CtlError> {
    let d = client.daemon()?;
    let r = sorted(client.call(d.meters())?);
    if as_json {
        return Ok(json(&r));
    }
    Ok(lines(&r).into_iter().map(|l| l + "\n").collect())
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Ctrl-C and SIGTERM end a live command's loop (which then restores what it changed) instead of
/// killing the process.
pub fn catch_stop_signals() {
    // SAFETY: installing a handler that only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGINT, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
    }
}

pub fn stopping() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Restores the cursor however the loop ends.
struct Terminal {
    active: bool,
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if self.active {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(b"\x1b[?25h");
            let _ = o.flush();
        }
    }
}

/// Live meters at `rate_hz` until Ctrl-C (or `count` updates). With `as_json`, one JSON object per line
/// per update instead of bars.
pub fn watch(client: &Client, rate_hz: f64, count: Option<u64>, as_json: bool) -> Result<(), CtlError> {
    let d = client.daemon()?;
    let rule = format!(
        "type='signal',interface='org.ballast.Daemon1',member='MetersUpdate',path='{}'",
        crate::client::ROOT_PATH
    );
    let conn = client.conn.clone();
    let mut stream = client.call(zbus::MessageStream::for_match_rule(rule.as_str(), &conn, None))?;
    catch_stop_signals();
    client.call(d.subscribe_meters(rate_hz))?;

    // The stream is read on its own thread so that this one can notice Ctrl-C between updates.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        zbus::block_on(async {
            while let Some(m) = stream.next().await {
                let Ok(m) = m else { break };
                let Ok(v) = m.body().deserialize::<HashMap<String, HashMap<String, f64>>>() else { continue };
                if tx.send(v).is_err() {
                    break;
                }
            }
        })
    });

    let _terminal = Terminal { active: !as_json };
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| CtlError::io(format!("writing the meters: {e}"));
    if !as_json {
        out.write_all(b"\x1b[?25l").map_err(io)?;
    }
    let mut drawn = 0usize;
    let mut seen = 0u64;
    while !STOP.load(Ordering::Relaxed) && count.is_none_or(|c| seen < c) {
        let v = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(v) => v,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(CtlError {
                    code: crate::client::exit::NO_DAEMON,
                    message: "the bus connection closed".into(),
                })
            }
        };
        seen += 1;
        let r = sorted(v);
        if as_json {
            let line = serde_json::to_string(&json!({ "meters": r })).unwrap_or_default();
            writeln!(out, "{line}").map_err(io)?;
        } else {
            let lines = lines(&r);
            let mut frame = String::new();
            // Back to the first line of the previous frame; each line is cleared as it is redrawn.
            if drawn > 0 {
                frame.push_str(&format!("\x1b[{drawn}A"));
            }
            for l in &lines {
                frame.push('\r');
                frame.push_str(l);
                frame.push_str("\x1b[K\n");
            }
            // A shorter frame (a node removed) clears what is left of the old one.
            frame.push_str("\x1b[J");
            drawn = lines.len();
            out.write_all(frame.as_bytes()).map_err(io)?;
        }
        out.flush().map_err(io)?;
    }
    let _ = client.call(d.unsubscribe_meters());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_follow_the_units() {
        assert_eq!(bar("momentary_lufs", 0.0), format!("[{}]", "#".repeat(BAR)));
        assert_eq!(bar("momentary_lufs", -60.0), format!("[{}]", " ".repeat(BAR)));
        assert_eq!(bar("momentary_lufs", f64::NEG_INFINITY), format!("[{}]", " ".repeat(BAR)));
        assert_eq!(bar("gain_reduction_db", -12.0), format!("[{}{}]", "#".repeat(BAR / 2), " ".repeat(BAR / 2)));
        let r: Readings = [("meter".to_string(), [("momentary_lufs".to_string(), -23.04)].into_iter().collect())]
            .into_iter()
            .collect();
        let l = lines(&r);
        assert_eq!(l[0], "meter");
        assert!(l[1].starts_with("  momentary_lufs [") && l[1].ends_with("] -23 LUFS"), "{}", l[1]);
    }
}
