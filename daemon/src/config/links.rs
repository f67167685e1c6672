//! `[links]`: the `chain` shorthand and explicit `edges`, resolved against the nodes and ports; node
//! widths inferred; channel counts checked by the one mono/stereo rule ([`channel_map`]); cycles found.

use std::collections::HashSet;
use std::ops::Range;

use ballast_dsp::registry::Shape;
use toml_edit::Value;

use super::diag::{self, Sink};
use super::known_entries;
use super::nodes::NodeDraft;
use super::settings::PortsDraft;
use super::value::{self, Entry};
use crate::graph::{channel_map, Endpoint, Link, NodeSpec};

const LINK_KEYS: [&str; 2] = ["chain", "edges"];

/// Width of a processor that nothing feeds as a whole (and of every generator without `channels`).
pub const DEFAULT_CHANNELS: usize = 2;

type Span = Option<Range<usize>>;

/// A link as written: (source text, its span), (sink text, its span).
type Pair<'d> = ((&'d str, Span), (&'d str, Span));

/// Which end of a link an endpoint text names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Source,
    Sink,
}

/// One resolved end of a link.
#[derive(Clone)]
struct End {
    /// `None`: the daemon's bus (`in` as source, `out` as sink).
    node: Option<usize>,
    channel: Option<usize>,
    text: String,
    span: Span,
}

struct RawLink {
    from: End,
    to: End,
}

/// Reads the links, infers widths and checks everything; returns the graph's nodes and links.
pub(crate) fn resolve(
    sink: &mut Sink<'_>,
    ports: &PortsDraft,
    nodes: Vec<NodeDraft>,
    links: Option<&Entry<'_>>,
) -> (Vec<NodeSpec>, Vec<Link>) {
    let mut pairs: Vec<Pair<'_>> = Vec::new();
    if let Some(links) = links {
        for e in known_entries(sink, links, "[links]", &LINK_KEYS) {
            match e.key {
                "chain" => chains(sink, &e, &mut pairs),
                "edges" => edges(sink, &e, &mut pairs),
                _ => unreachable!("known_entries returned an unknown key"),
            }
        }
    }

    let r = Resolver { ports, nodes: &nodes };
    let mut raw = Vec::with_capacity(pairs.len());
    for ((from, from_span), (to, to_span)) in pairs {
        let from = r.end(sink, from, from_span, Side::Source);
        let to = r.end(sink, to, to_span, Side::Sink);
        if let (Some(from), Some(to)) = (from, to) {
            raw.push(RawLink { from, to });
        }
    }

    let widths = infer_widths(ports, &nodes, &raw);
    check_channels(sink, ports, &nodes, &widths, &raw);
    check_cycles(sink, &nodes, &raw);
    warn_unconnected(sink, ports, &nodes, &raw);

    let specs = nodes
        .iter()
        .zip(&widths)
        .map(|(n, &channels)| NodeSpec {
            name: n.name.clone(),
            kind: n.kind.map_or_else(String::new, |k| k.descriptor.kind.to_string()),
            shape: Shape { channels, bands: n.bands },
            params: n.params.clone(),
        })
        .collect();
    let endpoint = |e: &End| match e.node {
        None => Endpoint::Io { channel: e.channel },
        Some(node) => Endpoint::Node { node, channel: e.channel },
    };
    let links = raw.iter().map(|l| Link { from: endpoint(&l.from), to: endpoint(&l.to) }).collect();
    (specs, links)
}

/// `chain = ["in", "a", "b", "out"]` or several: `chain = [["in", "a", "out"], ["in", "meter"]]`.
fn chains<'d>(sink: &mut Sink<'_>, e: &Entry<'d>, pairs: &mut Vec<Pair<'d>>) {
    let Some(array) = value::array(sink, e) else { return };
    let nested = array.iter().next().is_some_and(|v| matches!(v, Value::Array(_)));
    let lists: Vec<(&toml_edit::Array, Span)> = if nested {
        let mut lists = Vec::with_capacity(array.len());
        for v in array.iter() {
            match v {
                Value::Array(a) => lists.push((a, v.span())),
                other => sink.error(
                    v.span(),
                    format!(
                        "wrong type: `chain` lists chains, so each element must be an array, found {}",
                        value::found_value(other)
                    ),
                ),
            }
        }
        lists
    } else {
        vec![(array, value::span_of(e.item, &e.key_span))]
    };
    for (list, span) in lists {
        let mut names = Vec::with_capacity(list.len());
        for v in list.iter() {
            match v {
                Value::String(s) => names.push((s.value().as_str(), v.span())),
                other => sink.error(
                    v.span(),
                    format!("wrong type: chain elements must be strings, found {}", value::found_value(other)),
                ),
            }
        }
        if list.len() < 2 {
            sink.error(span, "a chain needs at least two elements (a source and a sink)");
        }
        for w in names.windows(2) {
            pairs.push((w[0].clone(), w[1].clone()));
        }
    }
}

/// `edges = [["in", "mbc"], ["mbc:out_1", "meter:in_1"]]`: each a `[source, sink]` pair.
fn edges<'d>(sink: &mut Sink<'_>, e: &Entry<'d>, pairs: &mut Vec<Pair<'d>>) {
    let Some(array) = value::array(sink, e) else { return };
    for v in array.iter() {
        let pair = match v {
            Value::Array(a) => a,
            other => {
                sink.error(
                    v.span(),
                    format!(
                        "wrong type: each edge must be a [source, sink] pair of strings, found {}",
                        value::found_value(other)
                    ),
                );
                continue;
            }
        };
        let ends: Vec<(&str, Span)> = pair
            .iter()
            .filter_map(|x| match x {
                Value::String(s) => Some((s.value().as_str(), x.span())),
                _ => None,
            })
            .collect();
        if ends.len() != 2 || pair.len() != 2 {
            sink.error(v.span(), "wrong type: each edge must be a [source, sink] pair of strings");
            continue;
        }
        pairs.push((ends[0].clone(), ends[1].clone()));
    }
}

struct Resolver<'a> {
    ports: &'a PortsDraft,
    nodes: &'a [NodeDraft],
}

impl Resolver<'_> {
    fn end(&self, sink: &mut Sink<'_>, text: &str, span: Span, side: Side) -> Option<End> {
        let scope = EndpointScope {
            audio_in: self.ports.audio_in.iter().map(|p| p.name.as_str()).collect(),
            audio_out: self.ports.audio_out.iter().map(|p| p.name.as_str()).collect(),
            nodes: self
                .nodes
                .iter()
                .map(|n| (n.name.as_str(), n.kind.filter(|k| k.generator).map(|k| k.descriptor.kind)))
                .collect(),
        };
        match parse_endpoint(&scope, text, side) {
            Ok((node, channel)) => Some(End { node, channel, text: text.to_string(), span }),
            Err(why) => {
                sink.error(span, why);
                None
            }
        }
    }
}

/// What link endpoint texts are resolved against: the bus port names and the nodes, each with its kind
/// when it is a generator (which has no input to feed).
pub(crate) struct EndpointScope<'a> {
    pub audio_in: Vec<&'a str>,
    pub audio_out: Vec<&'a str>,
    pub nodes: Vec<(&'a str, Option<&'a str>)>,
}

/// Resolves one link endpoint as the config writes it (`node`, `node:out_2`, `in`, `out:PORT`…) to
/// (node index or `None` for the daemon's bus, channel or `None` for the whole bus). The error is the
/// one-line message the config reports; the D-Bus graph edits report the same.
pub(crate) fn parse_endpoint(
    scope: &EndpointScope<'_>,
    text: &str,
    side: Side,
) -> Result<(Option<usize>, Option<usize>), String> {
    let (name, port) = match text.split_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (text, None),
    };
    let bus = match (name, side) {
        ("in", Side::Source) => Some(("in", "audio_in", &scope.audio_in)),
        ("out", Side::Sink) => Some(("out", "audio_out", &scope.audio_out)),
        ("in", Side::Sink) => {
            return Err(format!("`{text}`: `in` is the daemon's input bus, so it can only be a source"));
        }
        ("out", Side::Source) => {
            return Err(format!("`{text}`: `out` is the daemon's output bus, so it can only be a sink"));
        }
        _ => None,
    };
    if let Some((bus, key, names)) = bus {
        return bus_end(text, bus, key, names, port).map(|c| (None, c));
    }

    let Some(index) = scope.nodes.iter().position(|(n, _)| *n == name) else {
        let names: Vec<&str> = scope.nodes.iter().map(|(n, _)| *n).collect();
        let hint = diag::suggestion(name, names.iter().copied().chain(["in", "out"]));
        return Err(format!(
            "dangling link: no node or bus named `{name}`{hint} (nodes: {}; buses: in, out)",
            names.join(", ")
        ));
    };
    if let (Side::Sink, Some(kind)) = (side, scope.nodes[index].1) {
        return Err(format!("`{text}`: node `{name}` is a generator (kind \"{kind}\"); it has no input to feed"));
    }
    let (want, other) = match side {
        Side::Source => ("out", "in"),
        Side::Sink => ("in", "out"),
    };
    let channel = match port {
        None => None,
        Some(p) if p == want => None,
        Some(p) => match p.strip_prefix(want).and_then(|r| r.strip_prefix('_')).map(str::parse::<usize>) {
            Some(Ok(n)) if n >= 1 => Some(n - 1),
            _ => {
                let role = if side == Side::Source { "a source" } else { "a sink" };
                let why = if p == other || p.starts_with(&format!("{other}_")) {
                    format!("`{p}` is on the wrong side: as {role} use `{name}:{want}` or `{name}:{want}_N`")
                } else {
                    format!("unknown port `{p}` of node `{name}`: as {role} use `{name}:{want}` or `{name}:{want}_N` (N from 1)")
                };
                return Err(format!("`{text}`: {why}"));
            }
        },
    };
    Ok((Some(index), channel))
}

/// The channel of bus port `port` (`None` for the whole bus).
fn bus_end(text: &str, bus: &str, key: &str, names: &[&str], port: Option<&str>) -> Result<Option<usize>, String> {
    if names.is_empty() {
        return Err(format!("`{text}`: the `{bus}` bus has no ports; list them in [ports] {key} = [..]"));
    }
    let Some(port) = port else { return Ok(None) };
    match names.iter().position(|n| *n == port) {
        Some(i) => Ok(Some(i)),
        None => {
            let hint = diag::suggestion(port, names.iter().copied());
            Err(format!("dangling link: `{bus}` has no port `{port}`{hint} ({key}: {})", names.join(", ")))
        }
    }
}

/// Width of each node: explicit `channels`, else 2 for a generator, else the widest source that feeds
/// its whole input (a single channel counts as 1), else 2 when nothing does. Sources are resolved before
/// the nodes they feed; nodes caught in a cycle (reported elsewhere) fall back to 2.
fn infer_widths(ports: &PortsDraft, nodes: &[NodeDraft], links: &[RawLink]) -> Vec<usize> {
    let fixed: Vec<Option<usize>> =
        nodes.iter().map(|n| n.channels.or(if n.is_generator() { Some(DEFAULT_CHANNELS) } else { None })).collect();
    let ends: Vec<WidthLink> =
        links.iter().map(|l| ((l.from.node, l.from.channel), (l.to.node, l.to.channel))).collect();
    widths(ports.audio_in.len(), &fixed, &ends)
}

/// A link for width inference: ((source node, channel), (sink node, channel)); `None` node = a bus.
pub(crate) type WidthLink = ((Option<usize>, Option<usize>), (Option<usize>, Option<usize>));

/// The width rule of [`infer_widths`] over plain indices: `fixed[n]` is a node's width when it is
/// already known (explicit, a generator, or a running node), `None` to infer it from what feeds it.
pub(crate) fn widths(audio_in: usize, fixed: &[Option<usize>], links: &[WidthLink]) -> Vec<usize> {
    let mut widths: Vec<Option<usize>> = fixed.to_vec();
    loop {
        let mut progress = false;
        for n in 0..widths.len() {
            if widths[n].is_some() {
                continue;
            }
            let mut widest = None;
            let mut ready = true;
            for &(from, _) in links.iter().filter(|(_, to)| *to == (Some(n), None)) {
                let w = match from {
                    (_, Some(_)) => Some(1),
                    (None, None) => Some(audio_in),
                    (Some(m), None) => widths.get(m).copied().flatten(),
                };
                match w {
                    Some(w) => widest = widest.max(Some(w)),
                    None => ready = false,
                }
            }
            if ready {
                widths[n] = Some(widest.filter(|&w| w > 0).unwrap_or(DEFAULT_CHANNELS));
                progress = true;
            }
        }
        if !progress {
            break;
        }
    }
    widths.into_iter().map(|w| w.unwrap_or(DEFAULT_CHANNELS)).collect()
}

fn check_channels(sink: &mut Sink<'_>, ports: &PortsDraft, nodes: &[NodeDraft], widths: &[usize], links: &[RawLink]) {
    let known = |e: &End| e.node.is_none_or(|n| nodes[n].kind.is_some());
    // Links with a channel index past the node's width are reported once, not again as a mismatch.
    let mut bad = vec![false; links.len()];
    for (i, l) in links.iter().enumerate() {
        for (e, dir) in [(&l.from, "out"), (&l.to, "in")] {
            if let (Some(n), Some(c)) = (e.node, e.channel) {
                if known(e) && c >= widths[n] {
                    bad[i] = true;
                    sink.error(
                        e.span.clone(),
                        format!(
                            "`{}`: node `{}` has {} channel{} ({dir}_1..{dir}_{}); set `channels` to use more",
                            e.text,
                            nodes[n].name,
                            widths[n],
                            if widths[n] == 1 { "" } else { "s" },
                            widths[n]
                        ),
                    );
                }
            }
        }
    }
    for (l, _) in links.iter().zip(&bad).filter(|(_, bad)| !**bad) {
        if !known(&l.from) || !known(&l.to) {
            continue;
        }
        let width = |e: &End, bus: usize| match (e.node, e.channel) {
            (_, Some(_)) => 1,
            (None, None) => bus,
            (Some(n), None) => widths[n],
        };
        let from = width(&l.from, ports.audio_in.len());
        let to = width(&l.to, ports.audio_out.len());
        if channel_map(from, to).is_none() {
            sink.error(
                l.to.span.clone(),
                format!(
                    "channel-count mismatch: `{}` ({from} channels) cannot feed `{}` ({to} channels); equal widths \
                     connect one to one, mono spreads to any width and any width downmixes to mono, other pairs \
                     need per-channel links (`node:out_1` -> `node:in_1`…)",
                    l.from.text, l.to.text
                ),
            );
        }
    }
}

/// Reports every cycle (once per set of nodes), naming its nodes in link order, at the link that closes it.
fn check_cycles(sink: &mut Sink<'_>, nodes: &[NodeDraft], links: &[RawLink]) {
    let mut out: Vec<Vec<(usize, usize)>> = vec![Vec::new(); nodes.len()];
    for (i, l) in links.iter().enumerate() {
        if let (Some(a), Some(b)) = (l.from.node, l.to.node) {
            out[a].push((b, i));
        }
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; nodes.len()];
    let mut seen: HashSet<Vec<usize>> = HashSet::new();
    // Iterative DFS: (node, next edge index); `path` mirrors the open nodes in order.
    for start in 0..nodes.len() {
        if mark[start] != Mark::New {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        let mut path = vec![start];
        mark[start] = Mark::Open;
        while let Some(&mut (n, ref mut next)) = stack.last_mut() {
            if let Some(&(m, link)) = out[n].get(*next) {
                *next += 1;
                match mark[m] {
                    Mark::New => {
                        mark[m] = Mark::Open;
                        stack.push((m, 0));
                        path.push(m);
                    }
                    Mark::Open => {
                        let at = path.iter().position(|&p| p == m).unwrap_or(0);
                        let cycle = &path[at..];
                        let mut key = cycle.to_vec();
                        key.sort_unstable();
                        if seen.insert(key) {
                            let names: Vec<&str> = cycle.iter().chain([&m]).map(|&i| nodes[i].name.as_str()).collect();
                            sink.error(
                                links[link].to.span.clone(),
                                format!(
                                    "cycle: {} (audio cannot flow back into a node it came from)",
                                    names.join(" -> ")
                                ),
                            );
                        }
                    }
                    Mark::Done => {}
                }
            } else {
                mark[n] = Mark::Done;
                stack.pop();
                path.pop();
            }
        }
    }
}

fn warn_unconnected(sink: &mut Sink<'_>, ports: &PortsDraft, nodes: &[NodeDraft], links: &[RawLink]) {
    for (i, n) in nodes.iter().enumerate() {
        let fed = links.iter().any(|l| l.to.node == Some(i));
        let feeds = links.iter().any(|l| l.from.node == Some(i));
        let message = match (fed || n.is_generator(), feeds) {
            _ if !fed && !feeds => format!("node `{}` is not connected to anything", n.name),
            (false, true) => format!("node `{}` has nothing feeding its input (it processes silence)", n.name),
            (true, false) if n.kind.is_some_and(|k| k.descriptor.kind == "loudness_meter") => continue,
            (true, false) => format!("the output of node `{}` goes nowhere", n.name),
            _ => continue,
        };
        sink.warning(n.span.clone(), message);
    }
    for (i, p) in ports.audio_out.iter().enumerate() {
        let fed = links.iter().any(|l| l.to.node.is_none() && l.to.channel.is_none_or(|c| c == i));
        if !fed {
            sink.warning(p.span.clone(), format!("output port `{}` has nothing feeding it (it plays silence)", p.name));
        }
    }
    let mut seen = HashSet::new();
    for l in links {
        let key = (l.from.node, l.from.channel, l.to.node, l.to.channel);
        if !seen.insert(key) {
            sink.warning(
                l.to.span.clone(),
                format!("link `{}` -> `{}` appears twice; its signal is summed twice", l.from.text, l.to.text),
            );
        }
    }
}
