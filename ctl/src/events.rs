//! `events`: the daemon's change signals as they come, one line each, until Ctrl-C (or `--count`):
//! `GraphChanged`, `ParamChanged(node, param, value)` from any client or the daemon itself, and
//! `Xrun(total)`. For scripts that keep a view in sync with other clients.

use std::io::Write;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;

use crate::client::{self, Client, CtlError};
use crate::units::format_number;

/// One signal, decoded.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    GraphChanged,
    ParamChanged { node: String, param: String, value: f64 },
    Xrun { count: u64 },
}

impl Event {
    fn decode(m: &zbus::Message) -> Option<Event> {
        let h = m.header();
        match h.member()?.as_str() {
            "GraphChanged" => Some(Event::GraphChanged),
            "ParamChanged" => {
                let (node, param, value): (String, String, f64) = m.body().deserialize().ok()?;
                Some(Event::ParamChanged { node, param, value })
            }
            "Xrun" => Some(Event::Xrun { count: m.body().deserialize().ok()? }),
            _ => None,
        }
    }

    /// `graph-changed`, `param-changed comp.threshold_db -18`, `xrun 3`.
    pub fn text(&self) -> String {
        match self {
            Event::GraphChanged => "graph-changed".into(),
            Event::ParamChanged { node, param, value } => {
                format!("param-changed {node}.{param} {}", format_number(*value))
            }
            Event::Xrun { count } => format!("xrun {count}"),
        }
    }

    /// `{"event": "graph-changed"}`, `{"event": "param-changed", "node", "param", "value"}`,
    /// `{"event": "xrun", "count"}`.
    pub fn json(&self) -> serde_json::Value {
        match self {
            Event::GraphChanged => json!({ "event": "graph-changed" }),
            Event::ParamChanged { node, param, value } => {
                json!({ "event": "param-changed", "node": node, "param": param, "value": value })
            }
            Event::Xrun { count } => json!({ "event": "xrun", "count": count }),
        }
    }
}

pub fn watch(client: &Client, count: Option<u64>, as_json: bool) -> Result<(), CtlError> {
    let rule = format!("type='signal',interface='org.ballast.Daemon1',path='{}'", client::ROOT_PATH);
    let conn = client.conn.clone();
    let mut stream = client.call(zbus::MessageStream::for_match_rule(rule.as_str(), &conn, None))?;
    // The daemon must be there: the signals of a daemon that is not would never come.
    let d = client.daemon()?;
    client.call(d.status())?;
    crate::meters::catch_stop_signals();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        zbus::block_on(async {
            while let Some(Ok(m)) = stream.next().await {
                if let Some(e) = Event::decode(&m) {
                    if tx.send(e).is_err() {
                        break;
                    }
                }
            }
        })
    });
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| CtlError::io(format!("writing the events: {e}"));
    let mut seen = 0u64;
    while !crate::meters::stopping() && count.is_none_or(|c| seen < c) {
        let e = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(e) => e,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(CtlError { code: client::exit::NO_DAEMON, message: "the bus connection closed".into() })
            }
        };
        seen += 1;
        let line = if as_json { e.json().to_string() } else { e.text() };
        writeln!(out, "{line}").and_then(|()| out.flush()).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_as_lines() {
        let e = Event::ParamChanged { node: "comp".into(), param: "threshold_db".into(), value: -18.0 };
        assert_eq!(e.text(), "param-changed comp.threshold_db -18");
        assert_eq!(e.json()["param"], "threshold_db");
        assert_eq!(Event::Xrun { count: 3 }.text(), "xrun 3");
        assert_eq!(Event::GraphChanged.json(), json!({"event": "graph-changed"}));
    }
}
