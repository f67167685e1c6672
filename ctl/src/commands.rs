//! The daemon commands: each returns what to print (text, or JSON with `--json`), or a [`CtlError`].

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::{json, Value};
use zbus::OwnedVariant;

use crate::client::{self, Client, CtlError, Daemon1Proxy, NodeEntry};
use crate::units::{self, format_number, format_value, Target};

/// A parameter as `Describe` lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamDesc {
    pub key: String,
    pub name: String,
    pub unit: String,
    pub min: f64,
    pub max: f64,
    pub default: f64,
    pub scale: String,
    pub doc: String,
    pub choices: Vec<String>,
    pub boolean: bool,
    pub value: f64,
}

impl ParamDesc {
    fn from_map(m: &HashMap<String, OwnedVariant>) -> ParamDesc {
        let s = |k: &str| m.get(k).and_then(client::string).unwrap_or_default();
        let n = |k: &str| m.get(k).and_then(client::number).unwrap_or(f64::NAN);
        ParamDesc {
            key: s("key"),
            name: s("name"),
            unit: s("unit"),
            min: n("min"),
            max: n("max"),
            default: n("default"),
            scale: s("scale"),
            doc: s("doc"),
            choices: m.get("choices").map(client::strings).unwrap_or_default(),
            boolean: m.get("boolean").and_then(client::boolean).unwrap_or(false),
            value: n("value"),
        }
    }

    pub fn target(&self) -> Target {
        Target { unit: self.unit.clone(), choices: self.choices.clone(), boolean: self.boolean }
    }

    fn range(&self) -> String {
        if self.boolean {
            "off|on".into()
        } else if !self.choices.is_empty() {
            self.choices.join("|")
        } else {
            let t = Target::unit(&self.unit);
            format!("{}..{}", format_number(self.min), format_value(self.max, &t))
        }
    }

    fn json(&self) -> Value {
        json!({
            "key": self.key, "name": self.name, "unit": self.unit, "min": self.min, "max": self.max,
            "default": self.default, "scale": self.scale, "doc": self.doc, "choices": self.choices,
            "boolean": self.boolean, "value": self.value,
        })
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

/// A plain text table, columns padded to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, c) in cells.enumerate() {
            let _ = write!(l, "{c:<w$}  ", w = widths[i]);
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut out, &mut header.iter().copied());
    for r in rows {
        line(&mut out, &mut r.iter().map(String::as_str));
    }
    out
}

/// What `status` says for the block size before the daemon's audio backend runs.
pub const UNKNOWN_BLOCK: &str = "unknown (the audio backend is not running yet)";

pub fn status(client: &Client, json: bool) -> Result<String, CtlError> {
    let d = client.daemon()?;
    let st = client.call(d.status())?;
    let n = |k: &str| st.get(k).and_then(client::number).unwrap_or(f64::NAN);
    let s = |k: &str| st.get(k).and_then(client::string).unwrap_or_default();
    if json {
        // The daemon's own keys and types (integers stay integers); see ctl/README.md.
        const KEYS: [&str; 11] = [
            "backend",
            "sample_rate_hz",
            "block_size",
            "latency_samples",
            "graph_latency_samples",
            "latency_ms",
            "dsp_load_percent",
            "xruns",
            "uptime_s",
            "version",
            "nodes",
        ];
        let mut map: serde_json::Map<String, Value> =
            KEYS.iter().map(|k| (k.to_string(), st.get(*k).map(client::json).unwrap_or(Value::Null))).collect();
        let models: serde_json::Map<String, Value> = models(&st)
            .into_iter()
            .map(|(name, state, detail)| (name, serde_json::json!({ "state": state, "detail": detail })))
            .collect();
        map.insert("models".into(), Value::Object(models));
        return Ok(pretty(&Value::Object(map)));
    }
    let up = n("uptime_s");
    let uptime = if up.is_finite() {
        let t = up as u64;
        format!("{}h {:02}m {:02}s", t / 3600, t / 60 % 60, t % 60)
    } else {
        "?".into()
    };
    // The daemon leaves block_size (and the latency that depends on it) out until its audio backend runs.
    let block_known = st.contains_key("block_size");
    let rows = [
        ("backend", s("backend")),
        ("sample rate", format!("{} Hz", format_number(n("sample_rate_hz")))),
        ("block size", if block_known { format_number(n("block_size")) } else { UNKNOWN_BLOCK.into() }),
        (
            "latency",
            if block_known {
                format!(
                    "{} samples ({:.2} ms), of which graph {}",
                    format_number(n("latency_samples")),
                    n("latency_ms"),
                    format_number(n("graph_latency_samples"))
                )
            } else {
                format!("unknown until the backend runs; graph {}", format_number(n("graph_latency_samples")))
            },
        ),
        ("DSP load", format!("{:.1} %", n("dsp_load_percent"))),
        ("xruns", format_number(n("xruns"))),
        ("uptime", uptime),
        ("version", s("version")),
        ("nodes", format_number(n("nodes"))),
    ];
    let mut out: String = rows.iter().map(|(k, v)| format!("{k:<12} {v}\n")).collect();
    for (name, state, detail) in models(&st) {
        let label = format!("model {name}");
        if detail.is_empty() {
            out.push_str(&format!("{label:<12} {state}\n"));
        } else {
            out.push_str(&format!("{label:<12} {state}: {detail}\n"));
        }
    }
    Ok(out)
}

/// `Status`'s `models` (`a{s(ss)}`): (name, state, detail), sorted by name; empty from a daemon
/// without models.
fn models(st: &HashMap<String, zbus::OwnedVariant>) -> Vec<(String, String, String)> {
    let Some(v) = st.get("models") else { return Vec::new() };
    let Ok(map) = HashMap::<String, (String, String)>::try_from(v.try_clone().unwrap_or_else(|_| v.clone())) else {
        return Vec::new();
    };
    let mut list: Vec<(String, String, String)> = map.into_iter().map(|(k, (s, d))| (k, s, d)).collect();
    list.sort();
    list
}

pub fn list_nodes(client: &Client, d: &Daemon1Proxy<'static>) -> Result<Vec<NodeEntry>, CtlError> {
    client.call(d.list_nodes())
}

pub fn nodes(client: &Client, json: bool) -> Result<String, CtlError> {
    let d = client.daemon()?;
    let nodes = list_nodes(client, &d)?;
    if json {
        let list: Vec<Value> = nodes
            .iter()
            .map(|(name, kind, path, channels, bands, bypassed)| {
                json!({"name": name, "kind": kind, "channels": channels, "bands": bands,
                       "bypassed": bypassed, "path": path.as_str()})
            })
            .collect();
        return Ok(pretty(&json!({ "nodes": list })));
    }
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|(name, kind, _, channels, bands, bypassed)| {
            vec![
                name.clone(),
                kind.clone(),
                channels.to_string(),
                if *bands == 0 { "-".into() } else { bands.to_string() },
                if *bypassed { "yes".into() } else { "no".into() },
            ]
        })
        .collect();
    Ok(table(&["NODE", "KIND", "CHANNELS", "BANDS", "BYPASSED"], &rows))
}

/// The daemon's own typed error for a node or parameter that is not there (UnknownNode/UnknownParam),
/// got by asking it for the value.
fn daemon_refusal(client: &Client, d: &Daemon1Proxy<'static>, node: &str, param: &str) -> CtlError {
    match client.call(d.get(node, param)) {
        Err(e) => e,
        Ok(_) => CtlError::refused("UnknownNode", format!("node \"{node}\" has no object on the bus")),
    }
}

/// Every parameter of `node` with its descriptor.
pub fn describe(
    client: &Client,
    d: &Daemon1Proxy<'static>,
    nodes: &[NodeEntry],
    node: &str,
) -> Result<Vec<ParamDesc>, CtlError> {
    let Some(entry) = nodes.iter().find(|n| n.0 == node) else {
        return Err(daemon_refusal(client, d, node, ""));
    };
    let proxy = client.node(entry.2.clone())?;
    let list = client.call(proxy.describe()).map_err(|e| {
        // The object went away between ListNodes and Describe (a concurrent commit): say so as the
        // daemon does.
        if e.message.contains("UnknownObject") || e.message.contains("UnknownMethod") {
            daemon_refusal(client, d, node, "")
        } else {
            e
        }
    })?;
    Ok(list.iter().map(ParamDesc::from_map).collect())
}

pub fn params(client: &Client, node: &str, json: bool) -> Result<String, CtlError> {
    let d = client.daemon()?;
    let nodes = list_nodes(client, &d)?;
    let list = describe(client, &d, &nodes, node)?;
    if json {
        let params: Vec<Value> = list.iter().map(ParamDesc::json).collect();
        return Ok(pretty(&json!({ "node": node, "params": params })));
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            let t = p.target();
            vec![p.key.clone(), format_value(p.value, &t), p.range(), format_value(p.default, &t), p.name.clone()]
        })
        .collect();
    Ok(table(&["PARAM", "VALUE", "RANGE", "DEFAULT", "NAME"], &rows))
}

/// Splits `NODE.PARAM`. Node names may hold dots (`my-gain.stage`) and so may keys
/// (`band2.threshold_db`): the longest running node name followed by a dot wins; with none, the first
/// dot splits (and the daemon names what is wrong).
pub fn split_target(nodes: &[NodeEntry], text: &str) -> Result<(String, String), CtlError> {
    let best = nodes
        .iter()
        .map(|n| n.0.as_str())
        .filter(|name| text.len() > name.len() + 1 && text.starts_with(name) && text.as_bytes()[name.len()] == b'.')
        .max_by_key(|name| name.len());
    if let Some(name) = best {
        return Ok((name.to_string(), text[name.len() + 1..].to_string()));
    }
    match text.split_once('.') {
        Some((n, p)) if !n.is_empty() && !p.is_empty() => Ok((n.to_string(), p.to_string())),
        _ => Err(CtlError::usage(format!("\"{text}\" is not NODE.PARAM (e.g. comp.threshold_db)"))),
    }
}

pub fn get(client: &Client, target: &str, json: bool) -> Result<String, CtlError> {
    let d = client.daemon()?;
    let nodes = list_nodes(client, &d)?;
    let (node, param) = split_target(&nodes, target)?;
    let value = client.call(d.get(&node, &param))?;
    // The unit for display; the value itself came from `Get` (the daemon's typed errors first).
    let desc = describe(client, &d, &nodes, &node).ok().and_then(|l| l.into_iter().find(|p| p.key == param));
    let t = desc.as_ref().map(ParamDesc::target).unwrap_or_else(|| Target::unit(units::unit_of_key(&param)));
    if json {
        return Ok(pretty(&json!({
            "node": node, "param": param, "value": value, "unit": t.unit, "text": format_value(value, &t),
        })));
    }
    Ok(format!("{}\n", format_value(value, &t)))
}

pub fn set(client: &Client, target: &str, text: &str) -> Result<String, CtlError> {
    let d = client.daemon()?;
    let nodes = list_nodes(client, &d)?;
    let (node, param) = split_target(&nodes, target)?;
    let list = describe(client, &d, &nodes, &node)?;
    let Some(desc) = list.iter().find(|p| p.key == param) else {
        return Err(daemon_refusal(client, &d, &node, &param));
    };
    let t = desc.target();
    let value = units::parse_value(&format!("{node}.{param}"), text, &t).map_err(CtlError::usage)?;
    let now = client.call(d.set(&node, &param, value))?;
    Ok(format!("{node}.{param} = {}\n", format_value(now, &t)))
}

pub fn bypass(client: &Client, node: &str, on: bool) -> Result<String, CtlError> {
    let d = client.daemon()?;
    client.call(d.bypass(node, on))?;
    Ok(format!("{node}: bypass {}\n", if on { "on" } else { "off" }))
}

/// Opens a transaction, runs `steps`, commits; on any failure the transaction is aborted (the daemon
/// also drops it when this client leaves).
pub fn transaction(
    client: &Client,
    d: &Daemon1Proxy<'static>,
    steps: impl FnOnce() -> Result<(), CtlError>,
) -> Result<String, CtlError> {
    client.call(d.begin())?;
    if let Err(e) = steps() {
        let _ = client.call(d.abort());
        return Err(e);
    }
    let report = client.call(d.commit())?;
    let n = |k: &str| report.get(k).and_then(client::number).map(format_number).unwrap_or_else(|| "?".into());
    Ok(format!(
        "applied: {} kept, {} inserted, {} removed; graph latency {} samples\n",
        n("kept"),
        n("inserted"),
        n("removed"),
        n("latency_samples")
    ))
}

pub fn link(client: &Client, from: &str, to: &str, connect: bool) -> Result<String, CtlError> {
    let d = client.daemon()?;
    transaction(client, &d, || {
        if connect {
            client.call(d.connect(from, to))
        } else {
            client.call(d.disconnect(from, to))
        }
    })
}

pub fn reload(client: &Client) -> Result<String, CtlError> {
    let d = client.daemon()?;
    client.call(d.reload())?;
    Ok("reloaded the config\n".into())
}

pub fn preset_save(client: &Client, name: &str) -> Result<String, CtlError> {
    let d = client.daemon()?;
    client.call(d.preset_save(name))?;
    Ok(format!("saved preset {name}\n"))
}

pub fn preset_load(client: &Client, name: &str) -> Result<String, CtlError> {
    let d = client.daemon()?;
    client.call(d.preset_load(name))?;
    Ok(format!("loaded preset {name}\n"))
}

pub fn preset_delete(client: &Client, name: &str) -> Result<String, CtlError> {
    let d = client.daemon()?;
    client.call(d.preset_delete(name))?;
    Ok(format!("deleted preset {name}\n"))
}

pub fn preset_list(client: &Client, json: bool) -> Result<String, CtlError> {
    let d = client.daemon()?;
    let names = client.call(d.preset_list())?;
    if json {
        return Ok(pretty(&json!({ "presets": names })));
    }
    Ok(names.iter().map(|n| format!("{n}\n")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::OwnedObjectPath;

    fn entry(name: &str) -> NodeEntry {
        (name.into(), "compressor".into(), OwnedObjectPath::try_from("/x").unwrap(), 2, 0, false)
    }

    #[test]
    fn targets_split_at_the_running_node_names() {
        let nodes = [entry("comp"), entry("my-gain.stage"), entry("my-gain")];
        let split = |t: &str| split_target(&nodes, t).map_err(|e| e.message);
        assert_eq!(split("comp.threshold_db"), Ok(("comp".into(), "threshold_db".into())));
        assert_eq!(split("comp.band2.ratio"), Ok(("comp".into(), "band2.ratio".into())));
        assert_eq!(split("my-gain.stage.ratio"), Ok(("my-gain.stage".into(), "ratio".into())));
        assert_eq!(split("my-gain.ratio"), Ok(("my-gain".into(), "ratio".into())));
        assert_eq!(split("nosuch.ratio"), Ok(("nosuch".into(), "ratio".into())));
        assert!(split("comp").unwrap_err().contains("not NODE.PARAM"));
        assert!(split(".x").is_err());
    }
}
