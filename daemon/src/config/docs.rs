//! The node-kind sections of `config/README.md`, rendered from the descriptor tables so the docs cannot
//! drift from what the validator accepts. A test compares the committed README with this output;
//! `ballastd config-docs --write config/README.md` rewrites the generated part in place.

use std::fmt::Write as _;

use ballast_dsp::param::{ParamDescriptor, ParamId, Unit};
use ballast_dsp::registry::{self, KindEntry, Shape, CHANNELS};

use super::links::DEFAULT_CHANNELS;
use super::nodes::{is_multiband, BANDS_KEY, CROSSOVERS_KEY};

/// First line of the generated part of the README.
pub const BEGIN: &str =
    "<!-- BEGIN GENERATED: node kinds. Do not edit; run `cargo run -p ballastd -- config-docs --write config/README.md` -->";
/// Last line of the generated part of the README.
pub const END: &str = "<!-- END GENERATED: node kinds -->";

/// First and last lines of the generated `[models]` part of the README.
pub const MODELS_BEGIN: &str =
    "<!-- BEGIN GENERATED: models. Do not edit; run `cargo run -p ballastd -- config-docs --write config/README.md` -->";
pub const MODELS_END: &str = "<!-- END GENERATED: models -->";

/// Band count used to show a multiband's per-band defaults (the broadcast layout).
const EXAMPLE_BANDS: usize = 4;

/// Markdown for every node kind: its doc line and a table of its keys with type, range, default, meaning.
pub fn node_kinds_markdown() -> String {
    let mut md = String::new();
    for (i, kind) in registry::kinds().iter().enumerate() {
        if i > 0 {
            md.push('\n');
        }
        kind_section(&mut md, kind);
    }
    md
}

/// `readme` with the text between [`BEGIN`] and [`END`] replaced by [`node_kinds_markdown`], and
/// between [`MODELS_BEGIN`] and [`MODELS_END`] (when present) by [`models_markdown`]; `None` when the
/// node-kind markers are missing.
pub fn splice(readme: &str) -> Option<String> {
    let spliced = splice_between(readme, BEGIN, END, &node_kinds_markdown())?;
    Some(splice_between(&spliced, MODELS_BEGIN, MODELS_END, &models_markdown()).unwrap_or(spliced))
}

fn splice_between(text: &str, begin: &str, end: &str, body: &str) -> Option<String> {
    let start = text.find(begin)? + begin.len();
    let stop = start + text[start..].find(end)?;
    Some(format!("{}\n{}{}", &text[..start], body, &text[stop..]))
}

/// The `[models]` keys, their defaults and the places searched, from the constants the daemon uses.
pub fn models_markdown() -> String {
    use crate::workers::{ESTIMATOR_FILE, SYSTEM_MODEL_DIRS};
    use ballast_models::runtime::{ENV_VAR, ONNXRUNTIME_VERSION, SYSTEM_DIRS};
    let (lo, hi) = super::MODEL_WORKERS;
    let mut md = String::new();
    md.push_str("| key | type | range | default | meaning |\n|---|---|---|---|---|\n");
    let _ = writeln!(
        md,
        "| `onnxruntime` | string (path) | a file | searched, see below | The ONNX Runtime {ONNXRUNTIME_VERSION} shared \
         library (`libonnxruntime.so.{ONNXRUNTIME_VERSION}`). |"
    );
    let _ = writeln!(
        md,
        "| `estimator` | string (path) | a file | searched, see below | The compressor-settings estimator model \
         (`{ESTIMATOR_FILE}`), used by `Learn`/`Estimate` over D-Bus. |"
    );
    let _ = writeln!(
        md,
        "| `workers` | integer | {lo}..{hi} | 1 | Inference worker threads (ordinary threads at nice 10, never the \
         audio thread; one ONNX Runtime intra-op thread each, spinning off). |"
    );
    let system: Vec<String> = SYSTEM_DIRS.iter().map(|d| format!("`{d}/libonnxruntime.so*`")).collect();
    let _ = writeln!(
        md,
        "\nWithout `onnxruntime`: `${ENV_VAR}`, then the cache `make onnxruntime` fills \
         (`${{XDG_CACHE_HOME:-~/.cache}}/ballast/onnxruntime/{ONNXRUNTIME_VERSION}/libonnxruntime.so.{ONNXRUNTIME_VERSION}`), \
         then {}. A configured path that does not exist is an error, never replaced by another library.",
        system.join(" and ")
    );
    let dirs: Vec<String> = SYSTEM_MODEL_DIRS.iter().map(|d| format!("`{d}/`")).collect();
    let _ = writeln!(
        md,
        "\nWithout `estimator`: `{ESTIMATOR_FILE}` in `${{XDG_DATA_HOME:-~/.local/share}}/ballast/models/`, then {}, \
         then the source tree the daemon was built from (`models/{ESTIMATOR_FILE}`, for a checkout).",
        dirs.join(", ")
    );
    md
}

fn kind_section(md: &mut String, kind: &KindEntry) {
    let d = kind.descriptor;
    // Defaults as a freshly made node holds them: a kind may start a band elsewhere than its
    // descriptor's single default (the multiband staggers its bands).
    let node = kind.make(Shape { channels: 2, bands: EXAMPLE_BANDS });
    let _ = writeln!(md, "### `kind = \"{}\"`\n\n{}\n", d.kind, escape(d.doc));
    if kind.generator {
        let _ = writeln!(md, "A generator: it has no input, so it can only be the source of a link.\n");
    }
    md.push_str("| key | type | range | default | meaning |\n|---|---|---|---|---|\n");
    let (lo, hi) = (CHANNELS.start(), CHANNELS.end());
    let channels_default = if kind.generator {
        DEFAULT_CHANNELS.to_string()
    } else {
        format!("width of what feeds it, else {DEFAULT_CHANNELS}")
    };
    let _ = writeln!(md, "| `channels` | integer | {lo}..{hi} | {channels_default} | Audio channels of the node. |");
    if let Some(bands) = &kind.bands {
        let split = d.params.iter().find(|p| p.unit == Unit::Hz && p.key.starts_with("crossover_"));
        let (min, max) = split.map_or((0.0, 0.0), |p| (p.min, p.max));
        let _ = writeln!(
            md,
            "| `{CROSSOVERS_KEY}` | array of numbers (Hz) | {}..{} values, each {min}..{max}, rising | required | \
             Split frequencies, low to high: N crossovers make N + 1 bands. |",
            bands.start() - 1,
            bands.end() - 1,
        );
        let _ = writeln!(
            md,
            "| `{BANDS_KEY}` | array of tables | one per band | every band key at its default | \
             Per-band settings, low band first; keys below. |"
        );
    }
    for p in d.params.iter().filter(|p| !(is_multiband(kind) && p.key.starts_with("crossover_"))) {
        row(md, p, &default_text(p, node.param(p.id)));
    }
    if !d.band_params.is_empty() {
        let _ = writeln!(md, "\nPer band, in each table of `{BANDS_KEY} = [{{ … }}, …]`:\n");
        md.push_str("| key | type | range | default | meaning |\n|---|---|---|---|---|\n");
        for p in d.band_params {
            let values: Vec<String> =
                (0..EXAMPLE_BANDS).map(|b| default_text(p, node.param(ParamId::band(b, p.id)))).collect();
            let default = if values.iter().all(|v| *v == values[0]) {
                values[0].clone()
            } else {
                format!("{} (with {EXAMPLE_BANDS} bands, low to high)", values.join(" / "))
            };
            row(md, p, &default);
        }
    }
}

fn row(md: &mut String, p: &ParamDescriptor, default: &str) {
    let (ty, range) = match p.unit {
        Unit::Bool => ("boolean".to_string(), "`true`, `false`".to_string()),
        Unit::Choice(options) => {
            ("string".to_string(), options.iter().map(|o| format!("`\"{o}\"`")).collect::<Vec<_>>().join(", "))
        }
        unit => {
            let suffix = unit.suffix();
            let ty = if suffix.is_empty() { "number".to_string() } else { format!("number ({suffix})") };
            (ty, format!("{}..{}", p.min, p.max))
        }
    };
    let _ = writeln!(md, "| `{}` | {ty} | {range} | {default} | {} |", p.key, escape(p.doc));
}

/// A value as the config writes it.
fn default_text(p: &ParamDescriptor, actual: Option<f32>) -> String {
    let v = actual.unwrap_or(p.default);
    match p.unit {
        Unit::Bool => (if v != 0.0 { "`true`" } else { "`false`" }).to_string(),
        Unit::Choice(options) => options.get(v as usize).map_or_else(|| v.to_string(), |o| format!("`\"{o}\"`")),
        _ => v.to_string(),
    }
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}
