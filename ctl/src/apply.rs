//! `apply FILE.toml`: a graph file (the config's `[nodes.*]` and `[links]`) made the running graph in
//! one transaction.
//!
//! The D-Bus API has no "take this TOML" method and ballastctl does not link the daemon's config
//! parser, so the file is read here, minimally: node kinds, `channels`, the kinds' parameters (numbers,
//! booleans, choices by name, a multiband's `crossovers_hz` and `bands`), `chain` and `edges`. Checking
//! is the daemon's: `Commit` runs the config's own rules on the result and refuses it as a whole.
//!
//! Since `ListNodes` gives nodes but not links, the transaction does not diff links. It rebuilds the
//! graph from the file instead: every running node the file does not name is removed; every node the
//! file names is removed (if running) and added again with the file's settings, which drops its links;
//! then the file's links are connected. A node that comes back with the same name, kind and shape is
//! *kept* by the daemon's commit (one swap on the RT side, its state, such as a loudness meter's
//! integration, carried over); its parameters become the file's (defaults for keys the file leaves
//! out). What the file does not say cannot survive, with one exception the API cannot see: a link
//! straight from `in` to `out` (no node on it) stays.

use std::collections::HashMap;

use ballast_dsp::param::Unit;
use ballast_dsp::registry;
use toml_edit::{Item, TableLike, Value};

use crate::client::{Client, CtlError, Daemon1Proxy, NodeEntry};

/// One node as the file defines it.
#[derive(Clone, Debug, PartialEq)]
pub struct FileNode {
    pub name: String,
    pub kind: String,
    pub params: Vec<(String, f64)>,
    /// 0: as the daemon infers it.
    pub channels: u32,
    /// 0: no bands.
    pub bands: u32,
}

/// A graph file's content.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GraphFile {
    pub nodes: Vec<FileNode>,
    pub links: Vec<(String, String)>,
}

/// One transaction step.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Remove(String),
    Add(FileNode),
    Connect(String, String),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Remove(n) => write!(f, "RemoveNode {n}"),
            Step::Add(n) => {
                write!(f, "AddNode {} ({}", n.name, n.kind)?;
                if n.channels > 0 {
                    write!(f, ", {} channels", n.channels)?;
                }
                if n.bands > 0 {
                    write!(f, ", {} bands", n.bands)?;
                }
                write!(f, ")")?;
                for (k, v) in &n.params {
                    write!(f, " {k}={v}")?;
                }
                Ok(())
            }
            Step::Connect(a, b) => write!(f, "Connect {a} -> {b}"),
        }
    }
}

/// Parses a graph file's text. Errors name the file and what is wrong.
pub fn parse(text: &str, file: &str) -> Result<GraphFile, String> {
    let doc =
        toml_edit::Document::parse(text).map_err(|e| format!("{file}: {}", crate::client::one_line(&e.to_string())))?;
    let root = doc.as_table();
    let mut out = GraphFile::default();
    if let Some(nodes) = root.get("nodes") {
        let nodes = nodes.as_table_like().ok_or_else(|| format!("{file}: [nodes] must be a table of nodes"))?;
        for (name, item) in nodes.iter() {
            out.nodes.push(node(file, name, item)?);
        }
    }
    if let Some(links) = root.get("links") {
        let links = links.as_table_like().ok_or_else(|| format!("{file}: [links] must be a table"))?;
        for (key, item) in links.iter() {
            match key {
                "chain" => chains(file, item, &mut out.links)?,
                "edges" => edges(file, item, &mut out.links)?,
                other => return Err(format!("{file}: unknown key `{other}` in [links] (known: chain, edges)")),
            }
        }
    }
    Ok(out)
}

fn node(file: &str, name: &str, item: &Item) -> Result<FileNode, String> {
    let t = item.as_table_like().ok_or_else(|| format!("{file}: nodes.{name} must be a table"))?;
    let kind = t
        .get("kind")
        .and_then(Item::as_str)
        .ok_or_else(|| format!("{file}: node `{name}` needs `kind = \"…\"`"))?
        .to_string();
    let entry = registry::find(&kind).ok_or_else(|| {
        let known: Vec<&str> = registry::kinds().iter().map(|k| k.descriptor.kind).collect();
        format!("{file}: node `{name}`: unknown kind \"{kind}\" (known: {})", known.join(", "))
    })?;
    let mut n = FileNode { name: name.to_string(), kind: kind.clone(), params: Vec::new(), channels: 0, bands: 0 };
    for (key, item) in t.iter() {
        let at = || format!("{file}: nodes.{name}.{key}");
        match key {
            "kind" => {}
            "channels" => {
                let c = item
                    .as_integer()
                    .filter(|c| *c > 0)
                    .ok_or_else(|| format!("{}: must be a positive integer", at()))?;
                n.channels = c as u32;
            }
            "crossovers_hz" => {
                let list = item.as_array().ok_or_else(|| format!("{}: must be an array of numbers (Hz)", at()))?;
                for (i, v) in list.iter().enumerate() {
                    let hz = number(v).ok_or_else(|| format!("{}: element {} is not a number", at(), i + 1))?;
                    n.params.push((format!("crossover_{}_hz", i + 1), hz));
                }
                n.bands = list.len() as u32 + 1;
            }
            "bands" => {
                let tables: Vec<&dyn TableLike> = match item {
                    Item::ArrayOfTables(a) => a.iter().map(|t| t as &dyn TableLike).collect(),
                    Item::Value(Value::Array(a)) => a
                        .iter()
                        .map(|v| v.as_inline_table().map(|t| t as &dyn TableLike))
                        .collect::<Option<_>>()
                        .ok_or_else(|| format!("{}: must be an array of tables, one per band", at()))?,
                    _ => return Err(format!("{}: must be an array of tables, one per band", at())),
                };
                for (b, band) in tables.iter().enumerate() {
                    for (k, v) in band.iter() {
                        let p = entry.descriptor.band_params.iter().find(|p| p.key == k);
                        let v = value(&format!("{}[{}].{k}", at(), b + 1), v, p.map(|p| p.unit))?;
                        n.params.push((format!("band{}.{k}", b + 1), v));
                    }
                }
            }
            _ => {
                let p = entry.descriptor.param_by_key(key);
                let v = value(&at(), item, p.map(|p| p.unit))?;
                n.params.push((key.to_string(), v));
            }
        }
    }
    Ok(n)
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i.value() as f64),
        Value::Float(f) => Some(*f.value()),
        _ => None,
    }
}

/// A parameter's value as the daemon takes it: numbers as they are, booleans 0/1, a choice's name as
/// its index. An unknown key passes as a number: the daemon names it with the kind's keys.
fn value(at: &str, item: &Item, unit: Option<Unit>) -> Result<f64, String> {
    let v = item.as_value().ok_or_else(|| format!("{at}: must be a value"))?;
    match (v, unit) {
        (Value::Boolean(b), _) => Ok(if *b.value() { 1.0 } else { 0.0 }),
        (Value::String(s), Some(Unit::Choice(options))) => {
            let s = s.value();
            options
                .iter()
                .position(|o| o == s)
                .map(|i| i as f64)
                .ok_or_else(|| format!("{at} = \"{s}\" is not a choice (one of: {})", options.join(", ")))
        }
        (v, _) => number(v).ok_or_else(|| format!("{at}: must be a number")),
    }
}

fn strings(at: &str, a: &toml_edit::Array) -> Result<Vec<String>, String> {
    a.iter().map(|v| v.as_str().map(str::to_string).ok_or_else(|| format!("{at}: elements must be strings"))).collect()
}

fn chains(file: &str, item: &Item, links: &mut Vec<(String, String)>) -> Result<(), String> {
    let at = format!("{file}: links.chain");
    let a = item.as_array().ok_or_else(|| format!("{at}: must be an array"))?;
    let lists: Vec<Vec<String>> = if a.iter().next().is_some_and(|v| v.is_array()) {
        a.iter()
            .map(|v| {
                v.as_array().ok_or_else(|| format!("{at}: each chain must be an array")).and_then(|l| strings(&at, l))
            })
            .collect::<Result<_, _>>()?
    } else {
        vec![strings(&at, a)?]
    };
    for l in lists {
        if l.len() < 2 {
            return Err(format!("{at}: a chain needs at least two elements"));
        }
        links.extend(l.windows(2).map(|w| (w[0].clone(), w[1].clone())));
    }
    Ok(())
}

fn edges(file: &str, item: &Item, links: &mut Vec<(String, String)>) -> Result<(), String> {
    let at = format!("{file}: links.edges");
    let a = item.as_array().ok_or_else(|| format!("{at}: must be an array of [source, sink] pairs"))?;
    for v in a.iter() {
        let pair = v.as_array().map(|p| strings(&at, p)).transpose()?.unwrap_or_default();
        if pair.len() != 2 {
            return Err(format!("{at}: each edge must be a [source, sink] pair of strings"));
        }
        links.push((pair[0].clone(), pair[1].clone()));
    }
    Ok(())
}

/// The transaction that makes `file` the running graph (see the module's doc).
pub fn plan(running: &[NodeEntry], file: &GraphFile) -> Vec<Step> {
    let mut steps = Vec::new();
    for (name, ..) in running {
        steps.push(Step::Remove(name.clone()));
    }
    for n in &file.nodes {
        steps.push(Step::Add(n.clone()));
    }
    for (a, b) in &file.links {
        steps.push(Step::Connect(a.clone(), b.clone()));
    }
    steps
}

/// Runs the plan as one transaction; `dry_run` prints it instead.
pub fn apply(client: &Client, path: &std::path::Path, dry_run: bool) -> Result<String, CtlError> {
    let text = std::fs::read_to_string(path).map_err(|e| CtlError::io(format!("{}: {e}", path.display())))?;
    let file = parse(&text, &path.display().to_string()).map_err(CtlError::usage)?;
    let d = client.daemon()?;
    let running = crate::commands::list_nodes(client, &d)?;
    let steps = plan(&running, &file);
    if dry_run {
        return Ok(steps.iter().map(|s| format!("{s}\n")).collect());
    }
    crate::commands::transaction(client, &d, || run(client, &d, &steps))
}

fn run(client: &Client, d: &Daemon1Proxy<'static>, steps: &[Step]) -> Result<(), CtlError> {
    for s in steps {
        match s {
            Step::Remove(n) => client.call(d.remove_node(n))?,
            Step::Add(n) => {
                let params: HashMap<&str, f64> = n.params.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                client.call(d.add_node(&n.name, &n.kind, params, n.channels, n.bands))?
            }
            Step::Connect(a, b) => client.call(d.connect(a, b))?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nodes_and_links() {
        let f = parse(
            r#"
[engine]
backend = "jack"
[nodes.glue]
kind = "compressor"
threshold_db = -18.0
ratio = 2
detector = "rms"
[nodes.mbc]
kind = "multiband"
crossovers_hz = [200, 2000]
bands = [{ threshold_db = -30 }, {}, { ratio = 4, solo = true }]
[nodes.meter]
kind = "loudness_meter"
channels = 2
[links]
chain = ["in", "glue", "mbc", "out"]
edges = [["mbc", "meter"]]
"#,
            "g.toml",
        )
        .unwrap();
        assert_eq!(f.nodes.len(), 3);
        let glue = &f.nodes[0];
        assert_eq!(glue.params, vec![("threshold_db".into(), -18.0), ("ratio".into(), 2.0), ("detector".into(), 1.0)]);
        let mbc = &f.nodes[1];
        assert_eq!(mbc.bands, 3);
        assert!(mbc.params.contains(&("crossover_2_hz".into(), 2000.0)));
        assert!(mbc.params.contains(&("band1.threshold_db".into(), -30.0)));
        assert!(mbc.params.contains(&("band3.solo".into(), 1.0)));
        assert_eq!(f.nodes[2].channels, 2);
        assert_eq!(
            f.links,
            vec![
                ("in".into(), "glue".into()),
                ("glue".into(), "mbc".into()),
                ("mbc".into(), "out".into()),
                ("mbc".into(), "meter".into())
            ]
        );
    }

    #[test]
    fn says_what_is_wrong() {
        for (text, want) in [
            ("[nodes.a]\nratio = 2", "node `a` needs `kind"),
            ("[nodes.a]\nkind = \"nosuch\"", "unknown kind \"nosuch\""),
            ("[nodes.a]\nkind = \"compressor\"\ndetector = \"loud\"", "is not a choice"),
            ("[links]\nchain = [\"in\"]", "at least two"),
            ("[links]\nwires = []", "unknown key `wires`"),
            ("[nodes", "g.toml"),
        ] {
            let e = parse(text, "g.toml").unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
