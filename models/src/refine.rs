//! Analysis-by-synthesis refinement of compressor settings: starting from the network's estimate, search
//! the settings whose re-synthesis through ballast's own `compressor` node best reproduces the wet
//! signal's gain trajectory.
//!
//! ## The measure ([`Refiner::residual_db`], the objective)
//! For one band: split dry and wet with the multiband node's own LR4 [`Crossover`] (one band: no split).
//! Render the dry band through a fresh `compressor` node (the dataset's [`FIXED_SETTINGS`]) with the
//! candidate settings; with several bands, split the rendered band again with the same crossover and keep
//! its own band, so it has been through the same filters as the wet band. Cut the signals into frames of
//! `hop` samples; a frame's level is `10·log10` of its mean square over channels. The gain trajectory of
//! a signal is its level minus the dry band's level, so the difference of two trajectories is the
//! difference of the two levels and the dry level cancels. The error is the RMS over the *scored* frames
//! of `wet level − candidate level`, in dB. Scored frames: dry band level above [`FLOOR_DB`] + 10 dB (as
//! [`crate::accuracy::resynthesis_error_db`]) and within [`SCORED_RANGE_DB`] of the band's loudest frame
//! (in a multiband split, the quiet frames of a band are the other bands' leakage).
//!
//! With 10 ms frames and one band this is exactly [`crate::accuracy::resynthesis_error_db`]; the search
//! uses [`OBJECTIVE_HOP_MS`] = 1 ms frames, fine enough that attacks show (the compressor updates its
//! gain every 32 samples, 0.67 ms at 48 kHz).
//!
//! ## The search
//! Makeup is a constant gain after the detector: for any other settings the best makeup is closed-form,
//! the mean of `wet level − candidate level` rendered at 0 dB makeup (clamped to the range), so the search
//! runs over the other five settings, normalised to [0, 1] ([`crate::params`]). Threshold and ratio have
//! a near-closed-form start too: in the static region the gain is `M − (1 − 1/R)·max(0, x − T)` for
//! detector level `x`, so a hinge fitted to (10 ms frame peak level, gain) pairs by least squares over a
//! 1 dB grid of `T` gives a threshold and ratio independent of the network. Starts: the network's
//! estimate, the hinge fit with the network's times and knee, and the hinge fit with a 3×3 grid of attack
//! and release times. All are scored on a coarse span (the first [`COARSE_S`] seconds); the best
//! [`COARSE_STARTS`] run Nelder-Mead there; the best result is polished by Nelder-Mead on the full span,
//! restarted once from where it stopped (a collapsed simplex is the usual way Nelder-Mead stalls).

use ballast_dsp::crossover::Crossover;
use ballast_dsp::registry::{self, Shape};
use ballast_dsp::Processor;

use crate::dataset::FIXED_SETTINGS;
use crate::features::FLOOR_DB;
use crate::params::{ranges, CompressorParams};

/// Frame length of the search's objective, ms.
pub const OBJECTIVE_HOP_MS: f64 = 1.0;
/// Frame length of the reported residual, ms: the re-synthesis error.
pub const RESIDUAL_HOP_MS: f64 = 10.0;
/// Frames quieter than the band's loudest by more than this are not scored, dB.
pub const SCORED_RANGE_DB: f32 = 60.0;
/// Span of the coarse stage, seconds (the whole pair when shorter).
pub const COARSE_S: f64 = 2.0;
/// Starts that run Nelder-Mead on the coarse span.
pub const COARSE_STARTS: usize = 2;
/// Gain-trajectory spread (p90 − p10 of the wet's gain, dB) at which a band counts as fully identifiable
/// in [`confidence`].
pub const FULL_SPREAD_DB: f32 = 3.0;

/// Dimensions searched: threshold, ratio, attack, release, knee (normalised); makeup is closed-form.
const DIMS: usize = 5;
/// Samples per node/crossover call.
const BLOCK: usize = 4096;

/// Budgets of the search, in objective evaluations (renders).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefineConfig {
    pub coarse_evals: usize,
    pub fine_evals: usize,
    pub restart_evals: usize,
}

impl Default for RefineConfig {
    fn default() -> Self {
        Self { coarse_evals: 70, fine_evals: 80, restart_evals: 40 }
    }
}

impl RefineConfig {
    /// The budgets [`crate::estimator::Estimator::estimate`] uses for `bands` bands: the default for one
    /// band; for several, a multiband render costs 2–3× a single one (the candidate is split again) and
    /// every band is searched, so each band gets about half.
    pub fn for_bands(bands: usize) -> Self {
        if bands <= 1 {
            Self::default()
        } else {
            Self { coarse_evals: 40, fine_evals: 45, restart_evals: 25 }
        }
    }
}

/// Why a pair cannot be refined.
#[derive(Clone, Debug, PartialEq)]
pub enum RefineError {
    /// A sample of dry or wet is NaN or infinite.
    NonFinite {
        signal: &'static str,
        channel: usize,
        index: usize,
    },
    /// The dry signal has no frame above the floor in any band: nothing to compare.
    Silent,
    Shape(String),
}

impl std::fmt::Display for RefineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RefineError::NonFinite { signal, channel, index } => {
                write!(f, "the {signal} audio has a NaN or infinite sample (channel {channel}, sample {index})")
            }
            RefineError::Silent => write!(f, "the dry audio is silent: there is no gain to compare"),
            RefineError::Shape(s) => write!(f, "{s}"),
        }
    }
}

impl std::error::Error for RefineError {}

/// One band's refined settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BandFit {
    pub params: CompressorParams,
    /// Re-synthesis error with `params` ([`RESIDUAL_HOP_MS`] frames), dB.
    pub residual_db: f32,
    /// Re-synthesis error of the starting (network) settings, same measure, dB.
    pub start_residual_db: f32,
    /// p90 − p10 of the wet's gain trajectory over the scored frames, dB: how much the compressor moved.
    pub spread_db: f32,
    /// Renders the search used.
    pub evals: usize,
}

/// Confidence in [0, 1] of a band's settings: `fit · identifiability`, where `fit = 1 / (1 + r²)` for the
/// residual `r` in dB (0 dB → 1, 1 dB → 0.5, 3 dB → 0.1) and `identifiability = min(1, spread /
/// FULL_SPREAD_DB)` (a gain that never moves says nothing about threshold, ratio or times). Not finite → 0.
pub fn confidence(residual_db: f32, spread_db: f32) -> f32 {
    if !residual_db.is_finite() || !spread_db.is_finite() {
        return 0.0;
    }
    let fit = 1.0 / (1.0 + residual_db * residual_db);
    (fit * (spread_db / FULL_SPREAD_DB).clamp(0.0, 1.0)).clamp(0.0, 1.0)
}

/// One band's fixed data: its dry signal and the wet's levels at both frame sizes.
struct Band {
    /// Dry band, planar.
    dry: Vec<Vec<f32>>,
    /// Wet band level and scored mask per objective frame.
    wet_fine: Vec<f64>,
    mask_fine: Vec<bool>,
    /// Same per residual frame.
    wet_coarse: Vec<f64>,
    mask_coarse: Vec<bool>,
    /// (peak level, gain) per scored residual frame for the hinge fit, dB.
    static_pairs: Vec<(f32, f32)>,
    spread_db: f32,
    /// No scored frame: the band is left at its start, with confidence 0.
    silent: bool,
}

/// Re-synthesis search over one (dry, wet) pair. Worker threads only (allocates).
pub struct Refiner {
    sample_rate: f64,
    channels: usize,
    crossovers_hz: Vec<f64>,
    node: Box<dyn Processor>,
    split: Option<Crossover>,
    bands: Vec<Band>,
    /// Rendered band and its re-split, planar; scratch.
    out: Vec<Vec<f32>>,
    resplit: Vec<Vec<f32>>,
    /// Per band, the other bands' rendered output split into this band (the crossover overlaps, so a
    /// wet band holds its neighbours' compressed signal too): added to every candidate. Empty for one band.
    leak: Vec<Vec<Vec<f32>>>,
    /// Per band, the makeup candidates are rendered with; the search corrects it in closed form.
    makeup: Vec<f32>,
    evals: usize,
}

impl std::fmt::Debug for Refiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refiner")
            .field("sample_rate", &self.sample_rate)
            .field("channels", &self.channels)
            .field("crossovers_hz", &self.crossovers_hz)
            .finish_non_exhaustive()
    }
}

fn level_db(ms: f64) -> f64 {
    10.0 * (ms + 1e-20).log10()
}

/// Mean-square level per `hop`-sample frame (whole frames only), dB, and the frame's peak, dB.
fn frame_levels(x: &[impl AsRef<[f32]>], hop: usize, span: usize) -> (Vec<f64>, Vec<f32>) {
    let frames = span / hop;
    let mut lv = Vec::with_capacity(frames);
    let mut pk = Vec::with_capacity(frames);
    for t in 0..frames {
        let (mut s, mut p) = (0.0f64, 0.0f32);
        for ch in x {
            for &v in &ch.as_ref()[t * hop..(t + 1) * hop] {
                s += f64::from(v) * f64::from(v);
                p = p.max(v.abs());
            }
        }
        lv.push(level_db(s / (hop * x.len()) as f64));
        pk.push(20.0 * p.max(1e-10).log10());
    }
    (lv, pk)
}

fn scored(dry_db: &[f64]) -> Vec<bool> {
    let top = dry_db.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    dry_db.iter().map(|&d| d > f64::from(FLOOR_DB + 10.0) && d > top - f64::from(SCORED_RANGE_DB)).collect()
}

fn percentile(mut v: Vec<f32>, p: f32) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f32::total_cmp);
    v[((v.len() - 1) as f32 * p).round() as usize]
}

impl Refiner {
    /// Prepares the search for `dry` and `wet` (planar, 1 or 2 channels, same length) split at
    /// `crossovers_hz`. Checks the input: every sample finite, every band's dry audible.
    pub fn new(dry: &[&[f32]], wet: &[&[f32]], sample_rate: f64, crossovers_hz: &[f64]) -> Result<Self, RefineError> {
        let channels = dry.len();
        if !(1..=2).contains(&channels) || wet.len() != channels {
            return Err(RefineError::Shape(format!("dry has {channels} channels and wet {}", wet.len())));
        }
        let n = dry[0].len();
        if dry.iter().chain(wet).any(|c| c.len() != n) {
            return Err(RefineError::Shape("dry and wet channels differ in length".into()));
        }
        for (signal, sig) in [("dry", dry), ("wet", wet)] {
            for (channel, c) in sig.iter().enumerate() {
                if let Some(index) = c.iter().position(|v| !v.is_finite()) {
                    return Err(RefineError::NonFinite { signal, channel, index });
                }
            }
        }
        let nbands = crossovers_hz.len() + 1;
        let make_split = || {
            (nbands > 1).then(|| {
                let mut x = Crossover::new(channels, nbands);
                x.set_frequencies(crossovers_hz);
                x.prepare(sample_rate, BLOCK);
                x
            })
        };
        let mut split = make_split();
        let split_all = |x: &mut Option<Crossover>, sig: &[&[f32]]| -> Vec<Vec<Vec<f32>>> {
            match x {
                None => vec![sig.iter().map(|c| c.to_vec()).collect()],
                Some(x) => {
                    x.reset();
                    let mut out = vec![vec![0.0f32; n]; nbands * channels];
                    split_into(x, sig, &mut out, n);
                    let mut it = out.into_iter();
                    (0..nbands).map(|_| (0..channels).map(|_| it.next().expect("sized")).collect()).collect()
                }
            }
        };
        let dry_bands = split_all(&mut split, dry);
        let wet_bands = split_all(&mut split, wet);
        let fine = ((sample_rate * OBJECTIVE_HOP_MS / 1000.0).round() as usize).max(1);
        let coarse = ((sample_rate * RESIDUAL_HOP_MS / 1000.0).round() as usize).max(1);
        let mut bands = Vec::with_capacity(nbands);
        for (d, w) in dry_bands.into_iter().zip(wet_bands) {
            let (dry_fine, _) = frame_levels(&d, fine, n);
            let (wet_fine, _) = frame_levels(&w, fine, n);
            let (dry_coarse, dry_peak) = frame_levels(&d, coarse, n);
            let (wet_coarse, _) = frame_levels(&w, coarse, n);
            let mask_fine = scored(&dry_fine);
            let mask_coarse = scored(&dry_coarse);
            let silent = !mask_coarse.iter().any(|&m| m) || !mask_fine.iter().any(|&m| m);
            let static_pairs: Vec<(f32, f32)> = (0..dry_coarse.len())
                .filter(|&t| mask_coarse[t])
                .map(|t| (dry_peak[t], (wet_coarse[t] - dry_coarse[t]) as f32))
                .collect();
            let gains: Vec<f32> = static_pairs.iter().map(|p| p.1).collect();
            let spread_db = percentile(gains.clone(), 0.9) - percentile(gains, 0.1);
            bands.push(Band { dry: d, wet_fine, mask_fine, wet_coarse, mask_coarse, static_pairs, spread_db, silent });
        }
        if bands.iter().all(|b| b.silent) {
            return Err(RefineError::Silent);
        }
        let mut node = registry::create("compressor", Shape { channels, bands: 1 })
            .map_err(|e| RefineError::Shape(format!("compressor node: {e}")))?;
        node.prepare(sample_rate, BLOCK);
        for (key, v) in FIXED_SETTINGS {
            let id = node.descriptor().param_by_key(key).expect("compressor key").id;
            node.set_param(id, v).map_err(|e| RefineError::Shape(format!("{key}: {e:?}")))?;
        }
        Ok(Self {
            sample_rate,
            channels,
            crossovers_hz: crossovers_hz.to_vec(),
            node,
            split: make_split(),
            bands,
            out: vec![vec![0.0; n]; channels],
            resplit: vec![vec![0.0; n]; nbands * channels],
            leak: if nbands > 1 { vec![vec![vec![0.0; n]; channels]; nbands] } else { Vec::new() },
            makeup: vec![0.0; nbands],
            evals: 0,
        })
    }

    pub fn bands(&self) -> usize {
        self.bands.len()
    }

    /// p90 − p10 of band `band`'s wet gain trajectory, dB.
    pub fn spread_db(&self, band: usize) -> f32 {
        self.bands[band].spread_db
    }

    /// Renders band `band`'s first `span` samples with `p` into `self.out` (re-split when multiband) and
    /// returns the slices holding the result.
    fn render(&mut self, band: usize, p: CompressorParams, span: usize) -> &[Vec<f32>] {
        self.evals += 1;
        // Every candidate comes from `to_params`, inside the descriptor's ranges, so none is refused.
        let applied = p.apply(self.node.as_mut());
        debug_assert!(applied.is_ok(), "{p:?}: {applied:?}");
        self.node.reset();
        let dry = &self.bands[band].dry;
        let mut pos = 0;
        while pos < span {
            let len = (span - pos).min(BLOCK);
            let ins: Vec<&[f32]> = dry.iter().map(|c| &c[pos..pos + len]).collect();
            let mut outs: Vec<&mut [f32]> = self.out.iter_mut().map(|c| &mut c[pos..pos + len]).collect();
            self.node.process(&ins, &mut outs);
            pos += len;
        }
        match self.split.as_mut() {
            None => &self.out,
            Some(x) => {
                x.reset();
                let ins: Vec<&[f32]> = self.out.iter().map(|c| &c[..]).collect();
                split_into(x, &ins, &mut self.resplit, span);
                let ours = &mut self.resplit[band * self.channels..(band + 1) * self.channels];
                for (o, l) in ours.iter_mut().zip(&self.leak[band]) {
                    for (a, b) in o[..span].iter_mut().zip(&l[..span]) {
                        *a += b;
                    }
                }
                &self.resplit[band * self.channels..(band + 1) * self.channels]
            }
        }
    }

    /// Sets the other bands' settings each band's candidates are rendered beside (multiband only): band
    /// `b`'s leakage becomes the crossover's band `b` of every other band rendered with `params`.
    pub fn set_context(&mut self, params: &[CompressorParams]) {
        let nbands = self.bands.len();
        if nbands < 2 || params.len() != nbands {
            return;
        }
        let n = self.bands[0].dry[0].len();
        let mut rendered = Vec::with_capacity(nbands);
        for (b, p) in params.iter().enumerate() {
            let applied = p.apply(self.node.as_mut());
            debug_assert!(applied.is_ok(), "{p:?}: {applied:?}");
            self.node.reset();
            let mut out = vec![vec![0.0f32; n]; self.channels];
            let dry = &self.bands[b].dry;
            let mut pos = 0;
            while pos < n {
                let len = (n - pos).min(BLOCK);
                let ins: Vec<&[f32]> = dry.iter().map(|c| &c[pos..pos + len]).collect();
                let mut outs: Vec<&mut [f32]> = out.iter_mut().map(|c| &mut c[pos..pos + len]).collect();
                self.node.process(&ins, &mut outs);
                pos += len;
            }
            rendered.push(out);
        }
        let x = self.split.as_mut().expect("several bands have a crossover");
        for b in 0..nbands {
            let others: Vec<Vec<f32>> = (0..self.channels)
                .map(|c| (0..n).map(|i| (0..nbands).filter(|&o| o != b).map(|o| rendered[o][c][i]).sum()).collect())
                .collect();
            x.reset();
            let ins: Vec<&[f32]> = others.iter().map(|c| &c[..]).collect();
            split_into(x, &ins, &mut self.resplit, n);
            for c in 0..self.channels {
                self.leak[b][c].copy_from_slice(&self.resplit[b * self.channels + c]);
            }
        }
    }

    /// (error dB, best makeup dB) of `p` (its makeup ignored) for `band` over the first `span` samples,
    /// at the objective's frames (`fine`) or the residual's. Rendered with the band's current makeup; the
    /// best makeup is that plus the mean level difference (exact for one band, where makeup only shifts
    /// every frame's level; close for a multiband band, where the leakage does not move with it).
    fn error(&mut self, band: usize, p: CompressorParams, span: usize, fine: bool) -> (f64, f32) {
        let hop_ms = if fine { OBJECTIVE_HOP_MS } else { RESIDUAL_HOP_MS };
        let hop = ((self.sample_rate * hop_ms / 1000.0).round() as usize).max(1);
        let m0 = self.makeup[band];
        let p0 = CompressorParams { makeup_db: m0, ..p };
        let out = self.render(band, p0, span);
        let (cand, _) = frame_levels(out, hop, span);
        let b = &self.bands[band];
        let (wet, mask) = if fine { (&b.wet_fine, &b.mask_fine) } else { (&b.wet_coarse, &b.mask_coarse) };
        let d: Vec<f64> = (0..cand.len()).filter(|&t| mask[t]).map(|t| wet[t] - cand[t]).collect();
        if d.is_empty() {
            return (0.0, 0.0);
        }
        let r = ranges()[5];
        let m = (f64::from(m0) + d.iter().sum::<f64>() / d.len() as f64).clamp(f64::from(r.min), f64::from(r.max));
        let shift = m - f64::from(m0);
        let e = (d.iter().map(|x| (x - shift) * (x - shift)).sum::<f64>() / d.len() as f64).sqrt();
        (e, m as f32)
    }

    /// Re-synthesis error of `p` (its own makeup) for `band` over the whole pair at [`RESIDUAL_HOP_MS`]
    /// frames, dB: the measure in the module doc.
    pub fn residual_db(&mut self, band: usize, p: CompressorParams) -> f32 {
        let span = self.bands[band].dry[0].len();
        let hop = ((self.sample_rate * RESIDUAL_HOP_MS / 1000.0).round() as usize).max(1);
        let out = self.render(band, p, span);
        let (cand, _) = frame_levels(out, hop, span);
        let b = &self.bands[band];
        let d: Vec<f64> = (0..cand.len()).filter(|&t| b.mask_coarse[t]).map(|t| b.wet_coarse[t] - cand[t]).collect();
        if d.is_empty() {
            return 0.0;
        }
        (d.iter().map(|x| x * x).sum::<f64>() / d.len() as f64).sqrt() as f32
    }

    /// Threshold and ratio of the static hinge `gain = M − s·max(0, x − T)` fitted by least squares to
    /// band `band`'s (peak level, gain) frames, `T` on a 1 dB grid over the threshold range; `None` when
    /// no `T` gives a positive slope.
    fn hinge_fit(&self, band: usize) -> Option<(f32, f32)> {
        let pts = &self.bands[band].static_pairs;
        let r = ranges();
        let mut best: Option<(f64, f32, f32)> = None;
        let mut t = r[0].min;
        while t <= r[0].max {
            // Least squares of g = M − s·h with h = max(0, x − T).
            let (mut n, mut sh, mut sg, mut shh, mut shg) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
            for &(x, g) in pts {
                let h = f64::from((x - t).max(0.0));
                let g = f64::from(g);
                n += 1.0;
                sh += h;
                sg += g;
                shh += h * h;
                shg += h * g;
            }
            let var = shh - sh * sh / n;
            if var > 1e-9 {
                let s = (-(shg - sh * sg / n) / var).clamp(0.0, 1.0 - 1.0 / f64::from(r[1].max));
                let m = (sg + s * sh) / n;
                let sse: f64 = pts
                    .iter()
                    .map(|&(x, g)| {
                        let e = f64::from(g) - (m - s * f64::from((x - t).max(0.0)));
                        e * e
                    })
                    .sum();
                if s > 1e-3 && best.is_none_or(|b| sse < b.0) {
                    best = Some((sse, t, (1.0 / (1.0 - s)) as f32));
                }
            }
            t += 1.0;
        }
        best.map(|(_, t, ratio)| (t, ratio))
    }

    /// Whether band `band` has nothing to compare (refining it returns the start, confidence 0).
    pub fn silent(&self, band: usize) -> bool {
        self.bands[band].silent
    }

    /// Refines band `band` from `start`. Never returns settings outside the [`ranges`].
    pub fn refine_band(&mut self, band: usize, start: CompressorParams, cfg: &RefineConfig) -> BandFit {
        self.evals = 0;
        let start = finite_start(start);
        if self.bands[band].silent {
            return BandFit::unfitted(start);
        }
        let n = self.bands[band].dry[0].len();
        let coarse_span = ((COARSE_S * self.sample_rate) as usize).min(n);
        let start_residual_db = self.residual_db(band, start);
        self.makeup[band] = start.makeup_db;
        let u0 = start.normalised();
        let net: [f64; DIMS] = std::array::from_fn(|i| f64::from(u0[i]));
        let mut starts = vec![net];
        if let Some((t, ratio)) = self.hinge_fit(band) {
            let r = ranges();
            let mut h = net;
            h[0] = f64::from(r[0].normalise(t));
            h[1] = f64::from(r[1].normalise(ratio));
            starts.push(h);
            for attack in [0.5f32, 5.0, 50.0] {
                for release in [20.0f32, 200.0, 2000.0] {
                    let mut g = h;
                    g[2] = f64::from(r[2].normalise(attack));
                    g[3] = f64::from(r[3].normalise(release));
                    starts.push(g);
                }
            }
        }
        let f_coarse = |s: &mut Self, u: &[f64; DIMS]| s.error(band, to_params(u, 0.0), coarse_span, true).0;
        let mut scored: Vec<(f64, [f64; DIMS])> = starts.iter().map(|u| (f_coarse(self, u), *u)).collect();
        scored.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut results: Vec<(f64, [f64; DIMS])> = Vec::new();
        for (f0, u) in scored.into_iter().take(COARSE_STARTS) {
            results.push(nelder_mead(&mut |u| f_coarse(self, u), u, f0, 0.08, cfg.coarse_evals));
        }
        results.sort_by(|a, b| a.0.total_cmp(&b.0));
        self.makeup[band] = self.error(band, to_params(&results[0].1, 0.0), coarse_span, true).1;
        let f_fine = |s: &mut Self, u: &[f64; DIMS]| s.error(band, to_params(u, 0.0), n, true).0;
        // The coarse winner and the network's own start, judged on the full span.
        let mut best = results[0].1;
        let mut fbest = f_fine(self, &best);
        let fnet = f_fine(self, &net);
        if fnet < fbest {
            (best, fbest) = (net, fnet);
        }
        let (f1, u1) = nelder_mead(&mut |u| f_fine(self, u), best, fbest, 0.04, cfg.fine_evals);
        self.makeup[band] = self.error(band, to_params(&u1, 0.0), n, true).1;
        let (_, u2) = nelder_mead(&mut |u| f_fine(self, u), u1, f1, 0.02, cfg.restart_evals);
        let (_, makeup) = self.error(band, to_params(&u2, 0.0), n, true);
        let params = to_params(&u2, makeup);
        let residual_db = self.residual_db(band, params);
        BandFit { params, residual_db, start_residual_db, spread_db: self.bands[band].spread_db, evals: self.evals }
    }

    /// Polishes band `band` from `start` on the full span with at most `evals` renders (after
    /// [`Refiner::set_context`] moved the other bands). `start_residual_db` of the result is NaN.
    pub fn polish_band(&mut self, band: usize, start: CompressorParams, evals: usize) -> BandFit {
        self.evals = 0;
        let start = finite_start(start);
        if self.bands[band].silent {
            return BandFit::unfitted(start);
        }
        let n = self.bands[band].dry[0].len();
        self.makeup[band] = start.makeup_db;
        let u0 = start.normalised();
        let u0: [f64; DIMS] = std::array::from_fn(|i| f64::from(u0[i]));
        let f_fine = |s: &mut Self, u: &[f64; DIMS]| s.error(band, to_params(u, 0.0), n, true).0;
        let f0 = f_fine(self, &u0);
        let (_, u1) = nelder_mead(&mut |u| f_fine(self, u), u0, f0, 0.02, evals);
        let (_, makeup) = self.error(band, to_params(&u1, 0.0), n, true);
        let params = to_params(&u1, makeup);
        let residual_db = self.residual_db(band, params);
        BandFit {
            params,
            residual_db,
            start_residual_db: f32::NAN,
            spread_db: self.bands[band].spread_db,
            evals: self.evals,
        }
    }
}

/// Settings from the searched coordinates (clamped to [0, 1]) and a makeup in dB, within the ranges.
fn to_params(u: &[f64; DIMS], makeup_db: f32) -> CompressorParams {
    let r = ranges();
    let unit = |v: f64| if v.is_finite() { v.clamp(0.0, 1.0) as f32 } else { 0.5 };
    let mut a: [f32; 6] = std::array::from_fn(|i| if i < DIMS { unit(u[i]) } else { 0.0 });
    a[5] = if makeup_db.is_finite() { r[5].normalise(makeup_db) } else { 0.5 };
    CompressorParams::from_normalised(a)
}

/// Splits `ins` (first `len` samples) with `x` into `outs` (`bands × channels`, band-major), in blocks the
/// crossover was prepared for.
fn split_into(x: &mut Crossover, ins: &[&[f32]], outs: &mut [Vec<f32>], len: usize) {
    let mut pos = 0;
    while pos < len {
        let l = (len - pos).min(BLOCK);
        let i: Vec<&[f32]> = ins.iter().map(|c| &c[pos..pos + l]).collect();
        let mut o: Vec<&mut [f32]> = outs.iter_mut().map(|c| &mut c[pos..pos + l]).collect();
        x.process(&i, &mut o);
        pos += l;
    }
}

/// Nelder-Mead over [0, 1]^DIMS (points clamped before evaluation) from `x0` (whose value is `f0`), initial
/// simplex steps of `step` (away from the nearer bound), at most `budget` evaluations. Returns the best
/// (value, point), clamped.
fn nelder_mead(
    f: &mut dyn FnMut(&[f64; DIMS]) -> f64,
    x0: [f64; DIMS],
    f0: f64,
    step: f64,
    budget: usize,
) -> (f64, [f64; DIMS]) {
    let clamp = |x: [f64; DIMS]| x.map(|v| v.clamp(0.0, 1.0));
    let x0 = clamp(x0);
    let mut evals = 0usize;
    let mut eval = |x: &[f64; DIMS], evals: &mut usize| {
        *evals += 1;
        f(&clamp(*x))
    };
    let mut simplex: Vec<(f64, [f64; DIMS])> = vec![(f0, x0)];
    for i in 0..DIMS {
        let mut x = x0;
        x[i] += if x0[i] + step <= 1.0 { step } else { -step };
        simplex.push((eval(&x, &mut evals), x));
    }
    while evals < budget {
        simplex.sort_by(|a, b| a.0.total_cmp(&b.0));
        if (simplex[DIMS].0 - simplex[0].0).abs() < 1e-5 {
            break;
        }
        let mut c = [0.0; DIMS];
        for (_, x) in &simplex[..DIMS] {
            for i in 0..DIMS {
                c[i] += x[i] / DIMS as f64;
            }
        }
        let worst = simplex[DIMS];
        let along = |t: f64| -> [f64; DIMS] { std::array::from_fn(|i| c[i] + t * (worst.1[i] - c[i])) };
        let xr = clamp(along(-1.0));
        let fr = eval(&xr, &mut evals);
        if fr < simplex[0].0 {
            let xe = clamp(along(-2.0));
            let fe = eval(&xe, &mut evals);
            simplex[DIMS] = if fe < fr { (fe, xe) } else { (fr, xr) };
        } else if fr < simplex[DIMS - 1].0 {
            simplex[DIMS] = (fr, xr);
        } else {
            let (xc, fc) = if fr < worst.0 {
                let x = clamp(along(-0.5));
                (x, eval(&x, &mut evals))
            } else {
                let x = along(0.5);
                (x, eval(&x, &mut evals))
            };
            if fc < worst.0.min(fr) {
                simplex[DIMS] = (fc, xc);
            } else {
                let best = simplex[0].1;
                for (fv, x) in simplex.iter_mut().skip(1) {
                    *x = std::array::from_fn(|i| best[i] + 0.5 * (x[i] - best[i]));
                    *fv = eval(x, &mut evals);
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.0.total_cmp(&b.0));
    (simplex[0].0, clamp(simplex[0].1))
}

/// `start` with every non-finite setting (a network that answered NaN) moved to the middle of its range.
fn finite_start(start: CompressorParams) -> CompressorParams {
    CompressorParams::from_normalised(start.normalised().map(|u| if u.is_finite() { u } else { 0.5 }))
}

impl BandFit {
    /// A silent band: nothing to compare, so the start comes back unfitted.
    fn unfitted(start: CompressorParams) -> BandFit {
        BandFit { params: start, residual_db: f32::NAN, start_residual_db: f32::NAN, spread_db: 0.0, evals: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accuracy::judge;
    use crate::dataset::{compress_into, compress_multiband_into, SAMPLE_RATE};
    use crate::rng::Rng;
    use crate::synth;

    /// Three seconds of bursty noise whose levels cross −30 dBFS often (seed chosen for it, as any would).
    fn material(seed: u64) -> [Vec<f32>; 2] {
        synth::render(synth::Kind::BurstyNoise, &mut Rng::new(seed), SAMPLE_RATE, 48_000 * 3)
    }

    const TRUTH: CompressorParams = CompressorParams {
        threshold_db: -30.0,
        ratio: 4.0,
        attack_ms: 5.0,
        release_ms: 120.0,
        knee_db: 6.0,
        makeup_db: 3.0,
    };

    /// Far from the truth in every setting: the network's worst kind of answer.
    const WRONG: CompressorParams = CompressorParams {
        threshold_db: -55.0,
        ratio: 1.5,
        attack_ms: 80.0,
        release_ms: 1500.0,
        knee_db: 18.0,
        makeup_db: -10.0,
    };

    fn in_ranges(p: CompressorParams) -> bool {
        ranges().iter().zip(p.to_array()).all(|(r, v)| v.is_finite() && v >= r.min && v <= r.max)
    }

    #[test]
    fn recovers_known_settings_from_a_wrong_start() {
        let dry = material(4);
        let mut wet = [Vec::new(), Vec::new()];
        let gr = compress_into([&dry[0], &dry[1]], TRUTH, &mut wet, 0).unwrap();
        eprintln!("largest gain reduction: {gr:.1} dB");
        assert!(gr > 6.0, "the material must exercise the compressor: {gr} dB");
        let mut r = Refiner::new(&[&dry[0], &dry[1]], &[&wet[0], &wet[1]], SAMPLE_RATE, &[]).unwrap();
        let fit = r.refine_band(0, WRONG, &RefineConfig::default());
        eprintln!("{fit:?}");
        assert!(in_ranges(fit.params));
        assert_eq!(
            judge(fit.params, TRUTH),
            [Some(true), Some(true), Some(true), Some(true), None, Some(true)],
            "{fit:?}"
        );
        assert!(fit.residual_db < 0.1 && fit.start_residual_db > 2.0, "{fit:?}");
        // The truth's own residual is exactly 0: the measure compares the node with itself.
        assert_eq!(r.residual_db(0, TRUTH), 0.0);
    }

    #[test]
    fn multiband_bands_fit_beside_their_neighbours() {
        let dry = material(5);
        let truth = [TRUTH, CompressorParams { threshold_db: -36.0, ratio: 3.0, attack_ms: 2.0, ..TRUTH }];
        let splits = [1000.0];
        let mut wet = [Vec::new(), Vec::new()];
        compress_multiband_into([&dry[0], &dry[1]], &splits, &truth, &mut wet, 0).unwrap();
        let mut r = Refiner::new(&[&dry[0], &dry[1]], &[&wet[0], &wet[1]], SAMPLE_RATE, &splits).unwrap();
        // With the other band at its truth, band b's leakage is exact and the truth fits to f32 noise.
        r.set_context(&truth);
        for (b, t) in truth.iter().enumerate() {
            let e = r.residual_db(b, *t);
            assert!(e < 0.05, "band {b}: truth's residual {e} dB");
        }
        r.set_context(&[WRONG, WRONG]);
        let fits: Vec<BandFit> = (0..2).map(|b| r.refine_band(b, WRONG, &RefineConfig::for_bands(2))).collect();
        r.set_context(&[fits[0].params, fits[1].params]);
        for (b, f) in fits.iter().enumerate() {
            let p = r.polish_band(b, f.params, 25);
            eprintln!("band {b}: {p:?}\n  from {f:?}");
            assert!(in_ranges(p.params));
            assert!(p.residual_db < 0.5 && f.start_residual_db > 2.0, "band {b}: {p:?}");
        }
    }

    #[test]
    fn settings_stay_in_range_from_any_start() {
        let dry = material(6);
        let mut wet = [Vec::new(), Vec::new()];
        // A setting at the corners of the ranges.
        let corner = CompressorParams {
            threshold_db: -80.0,
            ratio: 20.0,
            attack_ms: 0.1,
            release_ms: 5000.0,
            knee_db: 0.0,
            makeup_db: 24.0,
        };
        compress_into([&dry[0], &dry[1]], corner, &mut wet, 0).unwrap();
        let mut r = Refiner::new(&[&dry[0], &dry[1]], &[&wet[0], &wet[1]], SAMPLE_RATE, &[]).unwrap();
        let cheap = RefineConfig { coarse_evals: 20, fine_evals: 20, restart_evals: 10 };
        let wild = [
            CompressorParams {
                threshold_db: 50.0,
                ratio: 100.0,
                attack_ms: -3.0,
                release_ms: 1e9,
                knee_db: -1.0,
                makeup_db: 99.0,
            },
            CompressorParams { threshold_db: f32::NAN, ratio: f32::INFINITY, attack_ms: f32::NAN, ..WRONG },
            corner,
        ];
        for start in wild {
            let fit = r.refine_band(0, start, &cheap);
            assert!(in_ranges(fit.params), "{start:?} -> {fit:?}");
            assert!(fit.residual_db.is_finite(), "{fit:?}");
        }
    }

    #[test]
    fn bad_input_is_a_clear_error_or_zero_confidence() {
        let dry = material(7);
        let mut wet = [dry[0].clone(), dry[1].clone()];
        wet[1][1234] = f32::NAN;
        match Refiner::new(&[&dry[0], &dry[1]], &[&wet[0], &wet[1]], SAMPLE_RATE, &[]) {
            Err(e @ RefineError::NonFinite { signal: "wet", channel: 1, index: 1234 }) => {
                assert!(e.to_string().contains("NaN or infinite"), "{e}")
            }
            other => panic!("expected NonFinite, got {other:?}"),
        }
        let silence = vec![0.0f32; 48_000 * 3];
        match Refiner::new(&[&silence, &silence], &[&silence, &silence], SAMPLE_RATE, &[]) {
            Err(e @ RefineError::Silent) => assert!(e.to_string().contains("silent"), "{e}"),
            other => panic!("expected Silent, got {other:?}"),
        }
        // A quiet tone (−53 dBFS) at 100 Hz with a split at 5 kHz: the upper band holds only the filters'
        // leakage, far below the floor, the lower one the tone.
        let tone: Vec<f32> =
            (0..48_000 * 3).map(|i| 0.003 * (i as f32 * 2.0 * std::f32::consts::PI * 100.0 / 48_000.0).sin()).collect();
        let mut r = Refiner::new(&[&tone], &[&tone], SAMPLE_RATE, &[5000.0]).unwrap();
        assert!(!r.silent(0) && r.silent(1));
        let fit = r.refine_band(1, WRONG, &RefineConfig::default());
        assert_eq!(fit.evals, 0);
        assert_eq!(confidence(fit.residual_db, fit.spread_db), 0.0);
        // A pair where the compressor never moved: a perfect fit, but nothing identifies the settings.
        assert_eq!(confidence(0.0, 0.0), 0.0);
        assert_eq!(confidence(0.0, FULL_SPREAD_DB), 1.0);
        assert!((confidence(1.0, 10.0) - 0.5).abs() < 1e-6);
    }
}
