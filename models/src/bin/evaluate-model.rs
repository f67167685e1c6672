//! Measures an estimator `.onnx` the way the model card reports it, through ONNX Runtime from Rust (the
//! path ballast uses):
//!
//! - accuracy per parameter on `build-dataset` splits, identifiable and unidentifiable examples apart
//!   ([`accuracy::evaluate_split`]);
//! - re-synthesis error on fresh segments of the held-out test tracks: each segment compressed with
//!   random settings, estimated through [`Estimator::estimate`] (the user's path: whole-pair features,
//!   half-overlapping windows, median), rendered again with the estimate and compared as gain
//!   trajectories ([`accuracy::resynthesis_error_db`]);
//! - the latency of one estimate of a 4 s stereo pair (one window, one band).
//!
//! `evaluate-model --model M.onnx [--data DIR --split test ...] [--resynth N] [--json OUT]`

use std::path::PathBuf;
use std::time::Instant;

use ballast_models::accuracy::{self, Accuracy, SplitReport};
use ballast_models::dataset::{self, compress_into, SAMPLE_RATE, TEST_TRACKS, UNIDENTIFIABLE_GR_DB};
use ballast_models::estimator::Estimator;
use ballast_models::params::{CompressorParams, KEYS};
use ballast_models::rng::Rng;
use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser, Debug)]
#[command(about = "Accuracy, re-synthesis error and latency of a compressor-estimator model")]
struct Args {
    #[arg(long)]
    model: PathBuf,
    /// A build-dataset directory to score.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Splits of --data to score.
    #[arg(long, default_values_t = ["validation".to_string(), "test".to_string()])]
    split: Vec<String>,
    /// Re-synthesis segments drawn from the held-out test tracks (0: skip).
    #[arg(long, default_value_t = 200)]
    resynth: usize,
    /// Length of each re-synthesis segment, seconds.
    #[arg(long, default_value_t = 8.0)]
    resynth_seconds: f64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[arg(long, default_value = dataset::DEFAULT_MUSIC_DIR)]
    music_dir: PathBuf,
    /// Repetitions for the latency figure.
    #[arg(long, default_value_t = 200)]
    latency_runs: usize,
    #[arg(long)]
    json: Option<PathBuf>,
    /// Replay this split of the seed-1 dataset (the card's `build-dataset` command) with its audio and
    /// score network-only and refined estimates on it (`Estimator::estimate`, the user's path).
    #[arg(long)]
    refine_split: Option<String>,
    /// Score every K-th example of the replayed split (1: all).
    #[arg(long, default_value_t = 1)]
    refine_every: usize,
    /// Examples in the replayed split (the card's build: 1500 validation and test).
    #[arg(long, default_value_t = 1500)]
    refine_count: usize,
    /// Check the replayed settings against this build-dataset directory's `{split}_y.npy`.
    #[arg(long)]
    check_y: Option<PathBuf>,
    /// Print every replayed example's truth, network and refined settings.
    #[arg(long)]
    verbose: bool,
}

/// Gain-reduction bins of the refine report, dB (metered maximum in the example's window).
const GR_BINS: [(f32, f32); 3] = [(0.5, 3.0), (3.0, 10.0), (10.0, f32::INFINITY)];

/// Network-only and refined accuracy side by side.
#[derive(Default)]
struct Pair {
    network: Accuracy,
    refined: Accuracy,
}

impl Pair {
    fn json(&self) -> Value {
        json!({"network": accuracy_json(&self.network), "refined": accuracy_json(&self.refined)})
    }
}

fn summary_db(v: &mut [f64]) -> Value {
    if v.is_empty() {
        return json!({"n": 0});
    }
    let within = v.iter().filter(|&&e| e <= 1.0).count() as f64 / v.len() as f64;
    json!({"n": v.len(), "median_db": percentile(v, 0.5), "p90_db": percentile(v, 0.9), "share_within_1db": within})
}

fn refine_report(a: &Args, est: &mut Estimator, split: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let s = dataset::SPLITS.iter().position(|x| *x == split).ok_or_else(|| format!("no split {split}"))?;
    let mut counts = [0; 3];
    counts[s] = a.refine_count;
    let cfg = dataset::Config {
        out: PathBuf::new(),
        music_dir: a.music_dir.clone(),
        seed: 1,
        counts,
        synthetic_fraction: 0.25,
        tracks_per_split: None,
        multiband_fraction: 0.2,
    };
    let check = match &a.check_y {
        Some(d) => {
            Some(ballast_models::npy::Npy::read(&d.join(format!("{split}_y.npy")))?.to_f32().ok_or("y not f32")?)
        }
        None => None,
    };
    let every = a.refine_every.max(1);
    let (mut ident, mut unident) = (Pair::default(), Pair::default());
    let mut bins: Vec<Pair> = GR_BINS.iter().map(|_| Pair::default()).collect();
    let (mut res_net, mut res_ref, mut res_unid) = (Vec::new(), Vec::new(), Vec::new());
    let (mut lat_single, mut lat_multi, mut lat_net) = (Vec::new(), Vec::new(), Vec::new());
    let (mut conf_id, mut conf_unid) = (Vec::new(), Vec::new());
    let mut mismatches = 0usize;
    let mut seen = 0usize;
    let t_all = Instant::now();
    // Whole segments are picked (every K-th by first example) and all their examples scored, so a
    // multiband segment is picked as often as a single-band one and refined once for all its bands.
    dataset::replay_split(&cfg, s, &|r: std::ops::Range<usize>| r.start % every == 0, &mut |seg| {
        let dry = [&seg.dry[0][..], &seg.dry[1][..]];
        let wet = [&seg.wet[0][..], &seg.wet[1][..]];
        let t0 = Instant::now();
        let e = est.estimate_with(&dry, &wet, SAMPLE_RATE, &seg.plan.crossovers_hz, None);
        lat_net.push(t0.elapsed().as_secs_f64() * 1e3);
        let t0 = Instant::now();
        let e = e.and_then(|_| est.estimate(&dry, &wet, SAMPLE_RATE, &seg.plan.crossovers_hz));
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        let e = e.map_err(|e| dataset::DatasetError::Render(format!("estimate: {e}")))?;
        if seg.plan.crossovers_hz.is_empty() {
            lat_single.push(ms)
        } else {
            lat_multi.push(ms)
        }
        for b in 0..seg.examples {
            let i = seg.first + b;
            let truth = seg.plan.params[b];
            if let Some(y) = &check {
                if y[i * 6..i * 6 + 6] != truth.to_array() {
                    mismatches += 1;
                }
            }
            seen += 1;
            let gr = seg.max_gr_db[b];
            if a.verbose {
                let ok = |p| {
                    accuracy::judge(p, truth)
                        .iter()
                        .map(|c| match c {
                            Some(true) => '+',
                            Some(false) => '-',
                            None => ' ',
                        })
                        .collect::<String>()
                };
                eprintln!(
                    "\n#{i} band {b}/{} gr {gr:.1} res net {:.2} ref {:.2} [{}] [{}]\n  truth {:?}\n  net   {:?}\n  ref   {:?}",
                    seg.plan.params.len(), e.network_residual_db[b], e.residual_db[b], ok(e.network[b]), ok(e.bands[b]),
                    truth.to_array(), e.network[b].to_array(), e.bands[b].to_array()
                );
            }
            if gr >= UNIDENTIFIABLE_GR_DB {
                ident.network.add(e.network[b], truth);
                ident.refined.add(e.bands[b], truth);
                if let Some(k) = GR_BINS.iter().position(|&(lo, hi)| gr >= lo && gr < hi) {
                    bins[k].network.add(e.network[b], truth);
                    bins[k].refined.add(e.bands[b], truth);
                }
                res_net.push(f64::from(e.network_residual_db[b]));
                res_ref.push(f64::from(e.residual_db[b]));
                conf_id.push(f64::from(e.band_confidence[b]));
            } else {
                unident.network.add(e.network[b], truth);
                unident.refined.add(e.bands[b], truth);
                res_unid.push(f64::from(e.residual_db[b]));
                conf_unid.push(f64::from(e.band_confidence[b]));
            }
        }
        eprint!(
            "\r{split}: {seen} examples, identifiable {} network {:.3} refined {:.3}, {:.0} s",
            ident.refined.count(),
            ident.network.overall().unwrap_or(0.0),
            ident.refined.overall().unwrap_or(0.0),
            t_all.elapsed().as_secs_f64()
        );
        Ok(())
    })?;
    eprintln!();
    let lat = |v: &mut Vec<f64>| {
        if v.is_empty() {
            return json!({"n": 0});
        }
        json!({"n": v.len(), "p50_ms": percentile(v, 0.5), "p99_ms": percentile(v, 0.99)})
    };
    let finite = |v: Vec<f64>| v.into_iter().filter(|x| x.is_finite()).collect::<Vec<_>>();
    let mut res_unid = finite(res_unid);
    let med = |v: &mut Vec<f64>| if v.is_empty() { f64::NAN } else { percentile(v, 0.5) };
    Ok(json!({
        "split": split,
        "replay": {"seed": 1, "examples_in_split": a.refine_count, "every_kth_segment": every, "scored": seen,
                   "checked_against_y": check.is_some(), "mismatches": mismatches},
        "identifiable": ident.json(),
        "unidentifiable": unident.json(),
        "by_gain_reduction_db": GR_BINS.iter().zip(&bins).map(|((lo, hi), p)| json!({
            "from": lo, "to": if hi.is_finite() { json!(hi) } else { json!(null) }, "accuracy": p.json()
        })).collect::<Vec<_>>(),
        "residual_identifiable": {"network": summary_db(&mut res_net), "refined": summary_db(&mut res_ref)},
        "residual_unidentifiable_refined": summary_db(&mut res_unid),
        "confidence_median": {"identifiable": med(&mut conf_id), "unidentifiable": med(&mut conf_unid)},
        "latency": {
            "what": "Estimator::estimate of one 5 s stereo 48 kHz segment (network + refinement), one thread",
            "network_only": lat(&mut lat_net),
            "single_band": lat(&mut lat_single),
            "multiband": lat(&mut lat_multi),
        },
        "wall_s": t_all.elapsed().as_secs_f64(),
    }))
}

fn accuracy_json(a: &Accuracy) -> Value {
    let per: serde_json::Map<String, Value> =
        KEYS.iter().filter_map(|k| a.of(k).map(|v| (k.to_string(), json!(v)))).collect();
    json!({"examples": a.count(), "overall": a.overall(), "per_parameter": per})
}

fn split_json(r: &SplitReport) -> Value {
    json!({"identifiable": accuracy_json(&r.identifiable), "unidentifiable": accuracy_json(&r.unidentifiable)})
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    ballast_models::runtime::init(None)?;
    let mut est = Estimator::load(&a.model)?;
    let mut report = serde_json::Map::new();
    report.insert("model".into(), json!(a.model.display().to_string()));

    if let Some(dir) = &a.data {
        for split in &a.split {
            let r = accuracy::evaluate_split(&mut est, dir, split, 256)?;
            eprintln!(
                "{split}: identifiable {} examples, accuracy {:.4}; unidentifiable {} (makeup {:?})",
                r.identifiable.count(),
                r.identifiable.overall().unwrap_or(f64::NAN),
                r.unidentifiable.count(),
                r.unidentifiable.of("makeup_db")
            );
            report.insert(split.clone(), split_json(&r));
        }
    }

    if let Some(split) = a.refine_split.clone() {
        let r = refine_report(&a, &mut est, &split)?;
        eprintln!("refine: {}", serde_json::to_string_pretty(&r)?);
        report.insert(format!("refine_{split}"), r);
    }

    if a.resynth > 0 {
        let tracks: Vec<PathBuf> = TEST_TRACKS.iter().map(|t| a.music_dir.join(t)).collect();
        let audio: Vec<[Vec<f32>; 2]> = tracks.iter().map(|t| dataset::decode(t)).collect::<Result<_, _>>()?;
        let seg = (a.resynth_seconds * SAMPLE_RATE) as usize;
        let mut rng = Rng::new(a.seed);
        let (mut errs_id, mut errs_unid) = (Vec::new(), Vec::new());
        let mut acc = Accuracy::default();
        let mut acc_net = Accuracy::default();
        let mut errs_net = Vec::new();
        let mut wet = [Vec::new(), Vec::new()];
        for i in 0..a.resynth {
            let t = &audio[i % audio.len()];
            let offset = rng.below((t[0].len() - seg) as u64) as usize;
            let g = 10f64.powf(rng.uniform(dataset::INPUT_GAIN_DB.0, dataset::INPUT_GAIN_DB.1) / 20.0) as f32;
            let dry: [Vec<f32>; 2] =
                std::array::from_fn(|c| t[c][offset..offset + seg].iter().map(|x| x * g).collect());
            let truth = CompressorParams::sample(&mut rng);
            // Gain reduction metered after the first second, as the dataset flags its examples.
            let gr = compress_into([&dry[0], &dry[1]], truth, &mut wet, SAMPLE_RATE as usize)?;
            let e = est.estimate(&[&dry[0], &dry[1]], &[&wet[0], &wet[1]], SAMPLE_RATE, &[])?;
            let err = accuracy::resynthesis_error_db([&dry[0], &dry[1]], [&wet[0], &wet[1]], e.bands[0])?;
            if gr >= UNIDENTIFIABLE_GR_DB {
                let net = accuracy::resynthesis_error_db([&dry[0], &dry[1]], [&wet[0], &wet[1]], e.network[0])?;
                errs_net.push(f64::from(net));
                errs_id.push(f64::from(err));
                acc.add(e.bands[0], truth);
                acc_net.add(e.network[0], truth);
            } else {
                errs_unid.push(f64::from(err));
            }
        }
        let summary = |v: &mut Vec<f64>| {
            if v.is_empty() {
                return json!({"segments": 0});
            }
            let within = v.iter().filter(|&&e| e <= 1.0).count() as f64 / v.len() as f64;
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            json!({"segments": v.len(), "median_db": percentile(v, 0.5), "mean_db": mean,
                   "p90_db": percentile(v, 0.9), "share_within_1db": within})
        };
        let r = json!({
            "segment_s": a.resynth_seconds,
            "tracks": TEST_TRACKS,
            "seed": a.seed,
            "identifiable": summary(&mut errs_id),
            "unidentifiable": summary(&mut errs_unid),
            "estimate_accuracy_identifiable": accuracy_json(&acc),
            "network_only": {"identifiable": summary(&mut errs_net), "estimate_accuracy_identifiable": accuracy_json(&acc_net)},
        });
        eprintln!("re-synthesis: {r}");
        report.insert("resynthesis".into(), r);
    }

    if a.latency_runs > 0 {
        let n = (ballast_models::features::WINDOW_S * SAMPLE_RATE) as usize;
        let mut rng = Rng::new(a.seed ^ 0x5eed);
        let dry: [Vec<f32>; 2] = std::array::from_fn(|_| (0..n).map(|_| (rng.unit() as f32 - 0.5) * 0.5).collect());
        let p = CompressorParams::sample(&mut rng);
        let mut wet = [Vec::new(), Vec::new()];
        compress_into([&dry[0], &dry[1]], p, &mut wet, 0)?;
        let mut times = Vec::with_capacity(a.latency_runs);
        for _ in 0..a.latency_runs + 5 {
            let t0 = Instant::now();
            est.estimate(&[&dry[0], &dry[1]], &[&wet[0], &wet[1]], SAMPLE_RATE, &[])?;
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        let mut times = times.split_off(5);
        let model_only = {
            let x = ndarray::Array4::<f32>::from_elem(
                (
                    1,
                    ballast_models::features::SIGNALS,
                    ballast_models::features::FRAMES,
                    ballast_models::features::FEATURES,
                ),
                -30.0,
            );
            let mut v = Vec::with_capacity(a.latency_runs);
            for _ in 0..a.latency_runs {
                let t0 = Instant::now();
                est.predict_windows(x.view())?;
                v.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            v
        };
        let mut model_only = model_only;
        let r = json!({
            "what": "one Estimator::estimate of a 4 s stereo noise pair at 48 kHz, one band: network (features + one ONNX window) and refinement, one thread",
            "runs": times.len(),
            "p50_ms": percentile(&mut times, 0.5),
            "p99_ms": percentile(&mut times, 0.99),
            "model_only_p50_ms": percentile(&mut model_only, 0.5),
        });
        eprintln!("latency: {r}");
        report.insert("latency".into(), r);
    }

    let text = serde_json::to_string_pretty(&Value::Object(report))? + "\n";
    match &a.json {
        Some(p) => std::fs::write(p, &text)?,
        None => print!("{text}"),
    }
    Ok(())
}
