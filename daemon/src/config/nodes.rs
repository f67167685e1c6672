//! `[nodes.NAME]` tables: kind, channels, and the kind's parameters as its descriptor defines them.

use std::ops::Range;

use ballast_dsp::param::{ParamDescriptor, ParamId, Unit};
use ballast_dsp::registry::{self, KindEntry, CHANNELS};
use toml_edit::{Item, TableLike, Value};

use super::diag::{self, Sink};
use super::settings::valid_name;
use super::value::{self, Entry};

/// Names the daemon's own buses take in links; no node may use them.
pub(crate) const RESERVED: [&str; 2] = ["in", "out"];

/// Multiband keys that replace the descriptor's numbered split parameters.
pub(crate) const CROSSOVERS_KEY: &str = "crossovers_hz";
pub(crate) const BANDS_KEY: &str = "bands";

/// A node as read from its table, before links decide what its width defaults to.
pub(crate) struct NodeDraft {
    pub name: String,
    /// The node's name key (`mbc` in `[nodes.mbc]`).
    pub span: Option<Range<usize>>,
    /// `None` when the kind is missing or unknown (already reported); links still resolve its name.
    pub kind: Option<&'static KindEntry>,
    /// An explicit `channels = N`.
    pub channels: Option<usize>,
    pub bands: usize,
    pub params: Vec<(ParamId, f32)>,
}

impl NodeDraft {
    pub(crate) fn is_generator(&self) -> bool {
        self.kind.is_some_and(|k| k.generator)
    }
}

pub(crate) fn is_multiband(kind: &KindEntry) -> bool {
    kind.bands.is_some()
}

/// The multiband descriptor's numbered split keys (`crossover_1_hz`…), which the config writes as one
/// `crossovers_hz` list instead.
fn split_params(kind: &KindEntry) -> impl Iterator<Item = &'static ParamDescriptor> {
    let multiband = is_multiband(kind);
    kind.descriptor.params.iter().filter(move |p| multiband && is_split_key(p.key))
}

fn is_split_key(key: &str) -> bool {
    key.strip_prefix("crossover_").and_then(|r| r.strip_suffix("_hz")).is_some_and(|n| n.parse::<u32>().is_ok())
}

/// Every key a node of `kind` accepts, in documentation order.
pub(crate) fn node_keys(kind: &KindEntry) -> Vec<&'static str> {
    let mut keys = vec!["kind", "channels"];
    if is_multiband(kind) {
        keys.extend([CROSSOVERS_KEY, BANDS_KEY]);
    }
    keys.extend(kind.descriptor.params.iter().map(|p| p.key).filter(|k| !(is_multiband(kind) && is_split_key(k))));
    keys
}

fn kind_names() -> Vec<&'static str> {
    registry::kinds().iter().map(|k| k.descriptor.kind).collect()
}

pub(crate) fn parse(sink: &mut Sink<'_>, nodes: &Entry<'_>) -> Vec<NodeDraft> {
    let Some(entries) = value::entries(nodes.item) else {
        value::wrong_type(sink, nodes, "a table of nodes (`[nodes.NAME]`)");
        return Vec::new();
    };
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        if let Err(why) = valid_name(e.key) {
            sink.error(e.key_span.clone(), format!("node name \"{}\" {why}", e.key));
        } else if RESERVED.contains(&e.key) {
            sink.error(
                e.key_span.clone(),
                format!("duplicate name: `{}` is the daemon's {} bus; give the node another name", e.key, e.key),
            );
        }
        out.push(node(sink, &e));
    }
    out
}

fn node(sink: &mut Sink<'_>, e: &Entry<'_>) -> NodeDraft {
    let mut draft = NodeDraft {
        name: e.key.to_string(),
        span: e.key_span.clone(),
        kind: None,
        channels: None,
        bands: 0,
        params: Vec::new(),
    };
    let Some(entries) = value::entries(e.item) else {
        value::wrong_type(sink, e, "a table (`[nodes.NAME]` with `kind = \"…\"`)");
        return draft;
    };
    let Some(kind_entry) = entries.iter().find(|k| k.key == "kind") else {
        sink.error(e.key_span.clone(), format!("node `{}` has no `kind`; one of: {}", e.key, kind_names().join(", ")));
        return draft;
    };
    let Some(kind_name) = value::string(sink, kind_entry) else { return draft };
    let Some(kind) = registry::find(kind_name) else {
        let names = kind_names();
        let hint = diag::suggestion(kind_name, names.iter().copied());
        sink.error(
            value::span_of(kind_entry.item, &kind_entry.key_span),
            format!("unknown node kind \"{kind_name}\"{hint} (known kinds: {})", names.join(", ")),
        );
        return draft;
    };
    draft.kind = Some(kind);

    let mut crossovers: Option<(Vec<f32>, Option<Range<usize>>)> = None;
    let mut bands: Option<&Entry<'_>> = None;
    for entry in &entries {
        let span = value::span_of(entry.item, &entry.key_span);
        match entry.key {
            "kind" => {}
            "channels" => {
                if let Some(n) = value::integer(sink, entry) {
                    match usize::try_from(n).ok().filter(|n| CHANNELS.contains(n)) {
                        Some(n) => draft.channels = Some(n),
                        None => sink.error(
                            span,
                            format!("channels = {n} is out of range {}..{}", CHANNELS.start(), CHANNELS.end()),
                        ),
                    }
                }
            }
            CROSSOVERS_KEY if is_multiband(kind) => {
                crossovers = crossover_list(sink, kind, entry).map(|c| (c, span));
            }
            BANDS_KEY if is_multiband(kind) => bands = Some(entry),
            key if is_multiband(kind) && is_split_key(key) && kind.descriptor.param_by_key(key).is_some() => {
                sink.error(
                    entry.key_span.clone(),
                    format!(
                        "unknown key `{key}`: a multiband's split frequencies are one list, `{CROSSOVERS_KEY} = [..]`"
                    ),
                );
            }
            key => match kind.descriptor.param_by_key(key) {
                Some(p) => {
                    if let Some(v) = param_value(sink, entry, p) {
                        draft.params.push((p.id, v));
                    }
                }
                None => {
                    let known = node_keys(kind);
                    let hint = diag::suggestion(key, known.iter().copied());
                    sink.error(
                        entry.key_span.clone(),
                        format!(
                            "unknown key `{key}` for kind \"{}\"{hint} (known: {})",
                            kind.descriptor.kind,
                            known.join(", ")
                        ),
                    );
                }
            },
        }
    }

    if is_multiband(kind) {
        multiband(sink, kind, e, &mut draft, crossovers, bands);
    }
    draft
}

/// Reads `crossovers_hz`: each value in the split parameter's range, rising, and as many as the kind
/// allows bands minus one.
fn crossover_list(sink: &mut Sink<'_>, kind: &KindEntry, entry: &Entry<'_>) -> Option<Vec<f32>> {
    let array = value::array(sink, entry)?;
    let splits: Vec<&ParamDescriptor> = split_params(kind).collect();
    let mut out = Vec::with_capacity(array.len());
    let mut ok = true;
    for (i, v) in array.iter().enumerate() {
        let hz = match v {
            Value::Integer(n) => *n.value() as f64,
            Value::Float(f) => *f.value(),
            other => {
                sink.error(
                    v.span(),
                    format!(
                        "wrong type: the elements of `{CROSSOVERS_KEY}` must be numbers (Hz), found {}",
                        value::found_value(other)
                    ),
                );
                ok = false;
                continue;
            }
        } as f32;
        let p = splits.get(i).or(splits.last())?;
        if p.validate(hz).is_err() {
            let raw = sink.slice(v.span());
            sink.error(v.span(), format!("{CROSSOVERS_KEY}: {raw} is out of range {}", range_text(p)));
            ok = false;
        } else if let Some(&prev) = out.last() {
            if hz <= prev {
                sink.error(v.span(), format!("{CROSSOVERS_KEY} must rise from low to high: {hz} Hz follows {prev} Hz"));
                ok = false;
            }
        }
        out.push(hz);
    }
    ok.then_some(out)
}

fn multiband(
    sink: &mut Sink<'_>,
    kind: &KindEntry,
    e: &Entry<'_>,
    draft: &mut NodeDraft,
    crossovers: Option<(Vec<f32>, Option<Range<usize>>)>,
    bands: Option<&Entry<'_>>,
) {
    let allowed = kind.bands.clone().unwrap_or(2..=2);
    let Some((splits, splits_span)) = crossovers else {
        if !entries_have(e, CROSSOVERS_KEY) {
            sink.error(
                e.key_span.clone(),
                format!(
                    "node `{}` (multiband) needs `{CROSSOVERS_KEY} = [..]`: {}..{} split frequencies, low to high",
                    e.key,
                    allowed.start() - 1,
                    allowed.end() - 1
                ),
            );
        }
        return;
    };
    let n_bands = splits.len() + 1;
    if !allowed.contains(&n_bands) {
        sink.error(
            splits_span,
            format!(
                "{} crossovers make {n_bands} bands; a multiband has {}..{} bands ({}..{} crossovers)",
                splits.len(),
                allowed.start(),
                allowed.end(),
                allowed.start() - 1,
                allowed.end() - 1
            ),
        );
        return;
    }
    draft.bands = n_bands;
    for (p, hz) in split_params(kind).zip(&splits) {
        draft.params.push((p.id, *hz));
    }

    let Some(bands) = bands else { return };
    let tables: Vec<(&dyn TableLike, Option<Range<usize>>)> = match bands.item {
        Item::Value(Value::Array(a)) => {
            let mut t = Vec::with_capacity(a.len());
            for v in a.iter() {
                match v {
                    Value::InlineTable(it) => t.push((it as &dyn TableLike, v.span())),
                    other => sink.error(
                        v.span(),
                        format!(
                            "wrong type: each entry of `{BANDS_KEY}` must be a table `{{ threshold_db = .., .. }}`, found {}",
                            value::found_value(other)
                        ),
                    ),
                }
            }
            t
        }
        Item::ArrayOfTables(a) => a.iter().map(|t| (t as &dyn TableLike, t.span())).collect(),
        _ => {
            value::wrong_type(sink, bands, "an array of tables, one per band");
            return;
        }
    };
    if tables.len() != n_bands {
        sink.error(
            bands.key_span.clone(),
            format!(
                "band count mismatch: {} crossovers make {n_bands} bands, but `{BANDS_KEY}` has {} {}",
                splits.len(),
                tables.len(),
                if tables.len() == 1 { "entry" } else { "entries" }
            ),
        );
    }
    let known: Vec<&str> = kind.descriptor.band_params.iter().map(|p| p.key).collect();
    for (b, (table, _)) in tables.iter().enumerate().take(n_bands) {
        for entry in value::table_entries(*table) {
            match kind.descriptor.band_params.iter().find(|p| p.key == entry.key) {
                Some(p) => {
                    if let Some(v) = param_value(sink, &entry, p) {
                        draft.params.push((ParamId::band(b, p.id), v));
                    }
                }
                None => {
                    let hint = diag::suggestion(entry.key, known.iter().copied());
                    sink.error(
                        entry.key_span.clone(),
                        format!("unknown key `{}` in band {}{hint} (known: {})", entry.key, b + 1, known.join(", ")),
                    );
                }
            }
        }
    }
}

fn entries_have(e: &Entry<'_>, key: &str) -> bool {
    e.item.as_table_like().is_some_and(|t| t.contains_key(key))
}

/// `min..max (unit)`, as in "out of range 1..inf (:1)".
pub(crate) fn range_text(p: &ParamDescriptor) -> String {
    let suffix = p.unit.suffix();
    if suffix.is_empty() {
        format!("{}..{}", p.min, p.max)
    } else {
        format!("{}..{} ({suffix})", p.min, p.max)
    }
}

/// A parameter's value in the descriptor's terms: numbers in range, choices by name, bools as booleans.
fn param_value(sink: &mut Sink<'_>, e: &Entry<'_>, p: &ParamDescriptor) -> Option<f32> {
    let span = value::span_of(e.item, &e.key_span);
    match p.unit {
        Unit::Bool => value::boolean(sink, e).map(|b| if b { 1.0 } else { 0.0 }),
        Unit::Choice(options) => {
            let name = value::string(sink, e)?;
            match options.iter().position(|o| *o == name) {
                Some(i) => Some(i as f32),
                None => {
                    let hint = diag::suggestion(name, options.iter().copied());
                    sink.error(
                        span,
                        format!("{} = \"{name}\" is not a choice{hint} (one of: {})", p.key, options.join(", ")),
                    );
                    None
                }
            }
        }
        _ => {
            let v = value::number(sink, e)? as f32;
            match p.validate(v) {
                Ok(v) => Some(v),
                Err(_) => {
                    let raw = sink.slice(span.clone());
                    sink.error(span, format!("{} = {raw} is out of range {}", p.key, range_text(p)));
                    None
                }
            }
        }
    }
}
