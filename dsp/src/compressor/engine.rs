//! The dynamics engine shared by the compressor (one band) and the multiband compressor (2–6 bands
//! from an LR4 [`Crossover`]).
//!
//! Feed-forward design after D. Giannoulis, M. Massberg, J. D. Reiss, "Digital Dynamic Range
//! Compressor Design — A Tutorial and Analysis", JAES 60(6), 2012 (GMR): level detection, gain
//! computer in dB, then the gain *reduction* smoothed in the dB domain by a branching one-pole
//! (attack when the reduction grows, release when it falls): GMR's branching peak detector applied to
//! `x_L = x_G − y_G` after the gain computer, the log-domain arrangement they recommend.
//!
//! Control rate: per sample the engine only filters, detects (`max |x|` and `Σ x²` over the control
//! period) and applies a gain that moves linearly; every [`CONTROL_PERIOD`] samples it turns the
//! detector into a level (fast `log2`), evaluates the static curve, links the channels, smooths, and
//! sets the next gain ramp (fast `exp2`). One-pole coefficients are taken per control step
//! (`exp(−K/(τ·fs))`), so a step still reaches `1 − 1/e` after `τ`. The control counter is carried
//! across blocks, so output never depends on block boundaries.
//!
//! Detectors: peak = `max |x|` per control period (a full-scale sine reads 0 dBFS); RMS = the mean of
//! `x²` per period through a one-pole of [`RMS_WINDOW_MS`] (a full-scale sine reads −3.01 dBFS).
//!
//! Lanes: channels are processed in pairs; the lanes of a pair are `band × channel`, so a 4-band stereo
//! pair is eight f32 lanes (one AVX register) after four f64 crossover lanes per split.
//!
//! Glossary: `pk` peak accumulator, `ms` sum of squares, `rms` smoothed mean square, `y` smoothed gain
//! reduction (dB, ≥ 0), `g` applied gain, `dg` its per-sample step, `sc` sidechain high-pass.

// Lane loops index several arrays in lockstep; an index reads clearer than zipped iterators.
#![allow(clippy::needless_range_loop)]

use super::curve::control_coeff;
use super::fastmath::{db_to_amp, exp2, log2, DB_PER_LOG2};
use crate::biquad::{Coeffs, BUTTERWORTH_Q};
use crate::crossover::lanes::madd;
use crate::crossover::{self, Bank, Crossover, PairState, MAX_BANDS};
use crate::param::Smoothing;
use crate::smoother::Smoother;

/// Samples between gain-computer updates.
pub const CONTROL_PERIOD: usize = 32;
const _: () = assert!(CONTROL_PERIOD == crossover::COEFF_PERIOD);
/// Lanes of per-lane state: 2 × [`MAX_BANDS`] used, padded to 16 (two AVX registers) so the control loop
/// vectorises without a remainder.
pub(crate) const MAX_LANES: usize = 16;
const _: () = assert!(MAX_LANES >= 2 * MAX_BANDS);
/// Longest lookahead, preallocated.
pub const MAX_LOOKAHEAD_MS: f32 = 20.0;
/// Averaging time constant of the RMS detector.
pub const RMS_WINDOW_MS: f64 = 10.0;
/// Ramp time of makeup and output gain changes.
pub const GAIN_RAMP_MS: f32 = 20.0;
/// Ramp time of bypass, mute and solo (click-free switching).
pub const SWITCH_RAMP_MS: f32 = 10.0;

/// What a per-band parameter controls (ids live in the node descriptors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BandParam {
    Threshold,
    Ratio,
    Attack,
    Release,
    Knee,
    Makeup,
    Detector,
    Link,
    ScHpf,
    OutGain,
    Solo,
    Mute,
    Bypass,
}

/// Targets and derived coefficients of one band.
#[derive(Clone, Debug)]
pub(crate) struct Band {
    threshold_db: f32,
    ratio: f32,
    knee_db: f32,
    attack_ms: f32,
    release_ms: f32,
    rms: bool,
    link_pct: f32,
    sc_hpf_hz: f32,
    solo: bool,
    mute: bool,
    bypass: bool,
    makeup: Smoother,
    out_gain: Smoother,
    bypass_mix: Smoother,
    active: Smoother,
    slope: f32,
    alpha_a: f32,
    alpha_r: f32,
    gr_meter: f32,
}

impl Band {
    fn new() -> Self {
        let lin = |ms| Smoothing::Linear { ms };
        Band {
            threshold_db: -20.0,
            ratio: 4.0,
            knee_db: 6.0,
            attack_ms: 10.0,
            release_ms: 100.0,
            rms: false,
            link_pct: 100.0,
            sc_hpf_hz: 0.0,
            solo: false,
            mute: false,
            bypass: false,
            makeup: Smoother::new(lin(GAIN_RAMP_MS), 0.0),
            out_gain: Smoother::new(lin(GAIN_RAMP_MS), 0.0),
            bypass_mix: Smoother::new(lin(SWITCH_RAMP_MS), 0.0),
            active: Smoother::new(lin(SWITCH_RAMP_MS), 1.0),
            slope: 0.75,
            alpha_a: 0.0,
            alpha_r: 0.0,
            gr_meter: 0.0,
        }
    }

    /// Gain of the band with no reduction (makeup, output gain, bypass and mute applied).
    fn resting_gain(&self) -> f32 {
        let g = db_to_amp(self.makeup.current() + self.out_gain.current());
        let byp = self.bypass_mix.current();
        self.active.current() * (byp + (1.0 - byp) * g)
    }
}

/// Sidechain high-pass coefficients per lane (identity where off).
#[derive(Clone, Debug)]
pub(crate) struct ScCoeffs {
    pub b0: [f64; MAX_LANES],
    pub b1: [f64; MAX_LANES],
    pub b2: [f64; MAX_LANES],
    pub na1: [f64; MAX_LANES],
    pub na2: [f64; MAX_LANES],
}

/// State of one channel pair.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub pk: [f32; MAX_LANES],
    pub ms: [f32; MAX_LANES],
    pub rms: [f32; MAX_LANES],
    pub y: [f32; MAX_LANES],
    pub g: [f32; MAX_LANES],
    pub dg: [f32; MAX_LANES],
    pub gr: [f32; MAX_LANES],
    pub sc: [[f64; MAX_LANES]; 2],
    /// Lookahead delay line: frames of `stride` lanes (the kernel's lane count, padded).
    pub ring: Vec<f32>,
    /// Ring capacity − 1 (a power of two minus one).
    pub mask: usize,
    pub pos: usize,
}

impl Group {
    fn new(ring_len: usize, mask: usize) -> Self {
        Group {
            pk: [0.0; MAX_LANES],
            ms: [0.0; MAX_LANES],
            rms: [0.0; MAX_LANES],
            y: [0.0; MAX_LANES],
            g: [1.0; MAX_LANES],
            dg: [0.0; MAX_LANES],
            gr: [0.0; MAX_LANES],
            sc: [[0.0; MAX_LANES]; 2],
            ring: vec![0.0; ring_len],
            mask,
            pos: 0,
        }
    }
}

/// The engine: `bands` bands (1 = plain compressor, no crossover) × `channels` channels.
#[derive(Clone, Debug)]
pub(crate) struct Engine {
    channels: usize,
    bands: usize,
    sample_rate: f64,
    max_block: usize,
    band: Vec<Band>,
    pub xover: Crossover,
    groups: Vec<Group>,
    sc: ScCoeffs,
    sc_on: bool,
    lookahead_ms: f32,
    delay: usize,
    mask: usize,
    beta_rms: f32,
    lp: LaneParams,
    lanes_dirty: bool,
    counter: usize,
    zeros: Vec<f32>,
    discard: [Vec<f32>; 2],
    clean: Vec<Vec<f32>>,
    fma: bool,
}

impl Engine {
    pub fn new(channels: usize, bands: usize) -> Self {
        let channels = channels.max(1);
        let bands = bands.clamp(1, MAX_BANDS);
        let xover = Crossover::new(channels, bands.max(2));
        let fma = xover.uses_fma();
        let ident = ScCoeffs {
            b0: [1.0; MAX_LANES],
            b1: [0.0; MAX_LANES],
            b2: [0.0; MAX_LANES],
            na1: [0.0; MAX_LANES],
            na2: [0.0; MAX_LANES],
        };
        let mut e = Engine {
            channels,
            bands,
            sample_rate: 48_000.0,
            max_block: 0,
            band: vec![Band::new(); bands],
            xover,
            groups: Vec::new(),
            sc: ident,
            sc_on: false,
            lookahead_ms: 0.0,
            delay: 0,
            mask: 0,
            beta_rms: 0.0,
            lp: LaneParams::NEUTRAL,
            lanes_dirty: true,
            counter: 0,
            zeros: Vec::new(),
            discard: [Vec::new(), Vec::new()],
            clean: Vec::new(),
            fma,
        };
        e.prepare(48_000.0, 0);
        e
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    pub fn bands(&self) -> usize {
        self.bands
    }

    pub fn prepare(&mut self, sample_rate: f64, max_block: usize) {
        self.sample_rate = sample_rate;
        self.max_block = max_block;
        self.xover.prepare(sample_rate, max_block);
        let frames = (MAX_LOOKAHEAD_MS as f64 * 1e-3 * sample_rate).ceil() as usize + 1;
        let cap = frames.next_power_of_two();
        self.mask = cap - 1;
        let ring_len = cap * MAX_LANES;
        self.groups = vec![Group::new(ring_len, self.mask); self.channels.div_ceil(2)];
        self.zeros = vec![0.0; max_block];
        self.discard = [vec![0.0; max_block], vec![0.0; max_block]];
        self.clean = vec![vec![0.0; max_block]; self.channels];
        let control_rate = sample_rate / CONTROL_PERIOD as f64;
        for b in self.band.iter_mut() {
            for s in [&mut b.makeup, &mut b.out_gain, &mut b.bypass_mix, &mut b.active] {
                s.prepare(control_rate);
            }
        }
        self.beta_rms = control_coeff(RMS_WINDOW_MS, sample_rate, CONTROL_PERIOD);
        for i in 0..self.bands {
            self.update_band(i);
        }
        self.set_lookahead_ms(self.lookahead_ms);
        self.reset();
    }

    pub fn reset(&mut self) {
        self.xover.reset();
        let any_solo = self.band.iter().any(|b| b.solo);
        for b in self.band.iter_mut() {
            let act = b.active_target(any_solo);
            b.active.reset(act);
            for s in [&mut b.makeup, &mut b.out_gain, &mut b.bypass_mix] {
                s.reset(s.target());
            }
            b.gr_meter = 0.0;
        }
        self.refresh_lanes();
        self.lanes_dirty = false;
        for g in self.groups.iter_mut() {
            g.pk = [0.0; MAX_LANES];
            g.ms = [0.0; MAX_LANES];
            g.rms = [0.0; MAX_LANES];
            g.y = [0.0; MAX_LANES];
            g.dg = [0.0; MAX_LANES];
            g.gr = [0.0; MAX_LANES];
            g.sc = [[0.0; MAX_LANES]; 2];
            for (l, v) in g.g.iter_mut().enumerate() {
                *v = self.band.get(l / 2).map_or(1.0, Band::resting_gain);
            }
            g.ring.fill(0.0);
            g.pos = 0;
        }
        self.counter = 0;
    }

    /// Lookahead delay in samples (the node's latency).
    pub fn latency_samples(&self) -> usize {
        self.delay
    }

    pub fn lookahead_ms(&self) -> f32 {
        self.lookahead_ms
    }

    /// Sets the lookahead (a latency change: applied at once).
    pub fn set_lookahead_ms(&mut self, ms: f32) {
        self.lookahead_ms = ms.clamp(0.0, MAX_LOOKAHEAD_MS);
        let d = (self.lookahead_ms as f64 * 1e-3 * self.sample_rate).round() as usize;
        self.delay = d.min(self.mask);
    }

    /// Gain reduction of band `b` at the last control update, dB (≥ 0; the largest over channels).
    pub fn gain_reduction_db(&self, b: usize) -> f32 {
        self.band.get(b).map_or(f32::NAN, |b| b.gr_meter)
    }

    pub fn band_param(&self, b: usize, p: BandParam) -> Option<f32> {
        let bd = self.band.get(b)?;
        let flag = |v: bool| if v { 1.0 } else { 0.0 };
        Some(match p {
            BandParam::Threshold => bd.threshold_db,
            BandParam::Ratio => bd.ratio,
            BandParam::Attack => bd.attack_ms,
            BandParam::Release => bd.release_ms,
            BandParam::Knee => bd.knee_db,
            BandParam::Makeup => bd.makeup.target(),
            BandParam::Detector => flag(bd.rms),
            BandParam::Link => bd.link_pct,
            BandParam::ScHpf => bd.sc_hpf_hz,
            BandParam::OutGain => bd.out_gain.target(),
            BandParam::Solo => flag(bd.solo),
            BandParam::Mute => flag(bd.mute),
            BandParam::Bypass => flag(bd.bypass),
        })
    }

    /// Sets an already validated per-band value. RT-safe.
    pub fn set_band_param(&mut self, b: usize, p: BandParam, v: f32) {
        let Some(bd) = self.band.get_mut(b) else { return };
        match p {
            BandParam::Threshold => bd.threshold_db = v,
            BandParam::Ratio => bd.ratio = v.max(1.0),
            BandParam::Attack => bd.attack_ms = v,
            BandParam::Release => bd.release_ms = v,
            BandParam::Knee => bd.knee_db = v.max(0.0),
            BandParam::Makeup => bd.makeup.set_target(v),
            BandParam::Detector => bd.rms = v >= 0.5,
            BandParam::Link => bd.link_pct = v.clamp(0.0, 100.0),
            BandParam::ScHpf => {
                if bd.sc_hpf_hz <= 0.0 && v > 0.0 {
                    // Switching the filter in: start it from rest.
                    for g in self.groups.iter_mut() {
                        for s in g.sc.iter_mut() {
                            s[2 * b] = 0.0;
                            s[2 * b + 1] = 0.0;
                        }
                    }
                }
                bd.sc_hpf_hz = v.max(0.0);
            }
            BandParam::OutGain => bd.out_gain.set_target(v),
            BandParam::Solo => bd.solo = v >= 0.5,
            BandParam::Mute => bd.mute = v >= 0.5,
            BandParam::Bypass => bd.bypass_mix.set_target(if v >= 0.5 { 1.0 } else { 0.0 }),
        }
        if p == BandParam::Bypass {
            bd.bypass = v >= 0.5;
        }
        let any_solo = self.band.iter().any(|b| b.solo);
        for bd in self.band.iter_mut() {
            let t = bd.active_target(any_solo);
            bd.active.set_target(t);
        }
        self.update_band(b);
    }

    fn update_band(&mut self, b: usize) {
        let sr = self.sample_rate;
        let Some(bd) = self.band.get_mut(b) else { return };
        bd.slope = 1.0 - 1.0 / bd.ratio;
        bd.alpha_a = control_coeff(bd.attack_ms as f64, sr, CONTROL_PERIOD);
        bd.alpha_r = control_coeff(bd.release_ms as f64, sr, CONTROL_PERIOD);
        let c = if bd.sc_hpf_hz > 0.0 {
            let f = (bd.sc_hpf_hz as f64).min(crossover::MAX_SPLIT_FRACTION * sr);
            Coeffs::highpass(f, BUTTERWORTH_Q, sr)
        } else {
            Coeffs::IDENTITY
        };
        for l in [2 * b, 2 * b + 1] {
            self.sc.b0[l] = c.b0;
            self.sc.b1[l] = c.b1;
            self.sc.b2[l] = c.b2;
            self.sc.na1[l] = -c.a1;
            self.sc.na2[l] = -c.a2;
        }
        self.sc_on = self.band.iter().any(|b| b.sc_hpf_hz > 0.0);
        self.lanes_dirty = true;
    }

    /// Processes one block (`inputs`/`outputs`: one slice per channel). Missing channels read as
    /// silence or are skipped; the block is cut at the shortest slice and the prepared maximum.
    pub fn process(&mut self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let frames = inputs
            .iter()
            .take(self.channels)
            .map(|c| c.len())
            .chain(outputs.iter().take(self.channels).map(|c| c.len()))
            .min()
            .unwrap_or(0)
            .min(self.max_block);
        if crate::processor::any_nonfinite(inputs) {
            // Non-finite samples would poison the filters and detectors: run on a cleaned copy.
            let mut clean = std::mem::take(&mut self.clean);
            for (c, buf) in clean.iter_mut().enumerate() {
                let src = inputs.get(c).map_or(&[][..], |s| &s[..frames.min(s.len())]);
                for (i, d) in buf[..frames].iter_mut().enumerate() {
                    let x = src.get(i).copied().unwrap_or(0.0);
                    *d = if x.is_finite() { x } else { 0.0 };
                }
            }
            {
                let refs = |c: usize| clean.get(c).map(|v| &v[..]);
                self.run(&refs, outputs, frames);
            }
            self.clean = clean;
        } else {
            self.run(&|c: usize| inputs.get(c).copied(), outputs, frames);
        }
        self.sanitize();
    }

    fn run<'a>(&mut self, input: &dyn Fn(usize) -> Option<&'a [f32]>, outputs: &mut [&mut [f32]], frames: usize) {
        let mut pos = 0;
        while pos < frames {
            let seg = (frames - pos).min(CONTROL_PERIOD - self.counter);
            for gi in 0..self.groups.len() {
                let c0 = 2 * gi;
                let x = |c: usize| match input(c) {
                    Some(s) if c < self.channels => &s[pos..pos + seg],
                    _ => &self.zeros[..seg],
                };
                let (x0, x1) = (x(c0), x(c0 + 1));
                let (lo, hi) = outputs.split_at_mut((c0 + 1).min(outputs.len()));
                let [d0, d1] = &mut self.discard;
                let y0 = match lo.get_mut(c0) {
                    Some(s) => &mut s[pos..pos + seg],
                    None => &mut d0[..seg],
                };
                let y1 = match hi.first_mut() {
                    Some(s) if c0 + 1 < self.channels => &mut s[pos..pos + seg],
                    _ => &mut d1[..seg],
                };
                dispatch(
                    self.bands,
                    self.sc_on,
                    self.fma,
                    &self.xover.bank,
                    &mut self.xover.pairs[gi],
                    &mut self.groups[gi],
                    &self.sc,
                    self.delay,
                    [x0, x1],
                    [y0, y1],
                );
            }
            self.counter += seg;
            if self.counter == CONTROL_PERIOD {
                self.counter = 0;
                self.control_tick();
            }
            pos += seg;
        }
    }

    /// Copies the band targets into per-lane arrays so the control loop is branch-free and vectorises.
    fn refresh_lanes(&mut self) {
        let lp = &mut self.lp;
        *lp = LaneParams::NEUTRAL;
        for (b, bd) in self.band.iter().enumerate() {
            for l in [2 * b, 2 * b + 1] {
                lp.thr[l] = bd.threshold_db;
                lp.slope[l] = bd.slope;
                lp.knee[l] = bd.knee_db;
                lp.inv_2w[l] = if bd.knee_db > 0.0 { 0.5 / bd.knee_db } else { 0.0 };
                lp.aa[l] = bd.alpha_a;
                lp.ar[l] = bd.alpha_r;
                lp.link[l] = bd.link_pct * 0.01;
                lp.rms[l] = if bd.rms { 1.0 } else { 0.0 };
                lp.offset_db[l] = bd.makeup.current() + bd.out_gain.current();
                lp.byp[l] = bd.bypass_mix.current();
                lp.act[l] = bd.active.current();
            }
        }
    }

    fn control_tick(&mut self) {
        #[cfg(target_arch = "x86_64")]
        if self.fma {
            // SAFETY: `fma` is true only when the CPU reported AVX2 and FMA at construction.
            unsafe { self.control_tick_avx() };
            return;
        }
        self.control_tick_lanes();
    }

    /// Runs the control loops over one AVX register of lanes (up to four bands) or two.
    #[inline(always)]
    fn control_tick_lanes(&mut self) {
        if self.bands <= 4 {
            self.control_tick_impl::<8>();
        } else {
            self.control_tick_impl::<MAX_LANES>();
        }
    }

    /// [`Engine::control_tick_impl`] compiled for AVX2+FMA (eight lanes per register).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn control_tick_avx(&mut self) {
        self.control_tick_lanes();
    }

    /// The control update over the first `L` lanes (`L` ≥ 2 × bands; lanes above hold nothing).
    #[inline(always)]
    fn control_tick_impl<const L: usize>(&mut self) {
        const K_INV: f32 = 1.0 / CONTROL_PERIOD as f32;
        let mut moved = self.lanes_dirty;
        for b in self.band.iter_mut() {
            for s in [&mut b.makeup, &mut b.out_gain, &mut b.bypass_mix, &mut b.active] {
                if s.is_smoothing() {
                    s.next();
                    moved = true;
                }
            }
        }
        if moved {
            self.refresh_lanes();
            self.lanes_dirty = false;
        }
        let lp = &self.lp;
        let beta = self.beta_rms;
        let mut band_max = [0.0f32; MAX_LANES / 2];
        for g in self.groups.iter_mut() {
            // On local copies, so the loop is element-wise over plain arrays (vectorises).
            let (pk, ms, mut rms) = (g.pk, g.ms, g.rms);
            let mut gr = [0.0f32; MAX_LANES];
            for l in 0..L {
                let mean = ms[l] * K_INV;
                let r = mean + beta * (rms[l] - mean);
                rms[l] = r;
                // Blend instead of branch (rms is 0 or 1).
                let v = pk[l] + lp.rms[l] * (r - pk[l]);
                let x = DB_PER_LOG2 * (1.0 - 0.5 * lp.rms[l]) * log2(v);
                gr[l] = gain_reduction_lanes(x, lp.thr[l], lp.slope[l], lp.knee[l], lp.inv_2w[l]);
            }
            g.rms = rms;
            g.gr = gr;
            g.pk = [0.0; MAX_LANES];
            g.ms = [0.0; MAX_LANES];
            for (b, m) in band_max.iter_mut().enumerate() {
                *m = m.max(g.gr[2 * b].max(g.gr[2 * b + 1]));
            }
        }
        // Expanded per lane, so the loop below is purely element-wise (vectorises).
        let bm: [f32; MAX_LANES] = std::array::from_fn(|l| band_max[l / 2]);
        let mut meter = [0.0f32; MAX_BANDS];
        for g in self.groups.iter_mut() {
            let (gr, mut y, gain_now) = (g.gr, g.y, g.g);
            let mut dg = [0.0f32; MAX_LANES];
            for l in 0..L {
                let x = gr[l] + lp.link[l] * (bm[l] - gr[l]);
                let a = if x > y[l] { lp.aa[l] } else { lp.ar[l] };
                y[l] = x + a * (y[l] - x);
                let gain = exp2((lp.offset_db[l] - y[l]) * (1.0 / DB_PER_LOG2));
                let target = lp.act[l] * (lp.byp[l] + (1.0 - lp.byp[l]) * gain);
                dg[l] = (target - gain_now[l]) * K_INV;
            }
            g.y = y;
            g.dg = dg;
            for (b, m) in meter.iter_mut().enumerate() {
                *m = m.max(y[2 * b].max(y[2 * b + 1]));
            }
        }
        for (b, m) in self.band.iter_mut().zip(meter) {
            b.gr_meter = m;
        }
        if self.bands >= 2 {
            self.xover.control_tick();
        }
    }

    /// Block-end hygiene: flush denormals, reset any state that went non-finite.
    fn sanitize(&mut self) {
        self.xover.sanitize();
        for g in self.groups.iter_mut() {
            let mut ok = true;
            for l in 0..MAX_LANES {
                for v in [g.rms[l], g.y[l], g.g[l], g.dg[l], g.ms[l], g.pk[l]] {
                    ok &= v.is_finite();
                }
                for s in g.sc.iter_mut() {
                    ok &= s[l].is_finite();
                    s[l] = crate::denormal::flush(s[l]);
                }
                // Subnormals only (see `denormal::flush`): a larger cut-off at block ends would make
                // the output depend on the block size.
                if g.rms[l] < f32::MIN_POSITIVE {
                    g.rms[l] = 0.0;
                }
            }
            if !ok {
                g.pk = [0.0; MAX_LANES];
                g.ms = [0.0; MAX_LANES];
                g.rms = [0.0; MAX_LANES];
                g.y = [0.0; MAX_LANES];
                g.dg = [0.0; MAX_LANES];
                g.g = [0.0; MAX_LANES];
                g.sc = [[0.0; MAX_LANES]; 2];
                g.ring.fill(0.0);
            }
        }
    }
}

impl Band {
    fn active_target(&self, any_solo: bool) -> f32 {
        if !self.mute && (!any_solo || self.solo) {
            1.0
        } else {
            0.0
        }
    }
}

/// The per-sample loop for `B` bands (1: no crossover), with or without sidechain filters, with or
/// without FMA, over one segment inside a control period. Every reference is a separate argument so
/// that the compiler knows they do not alias and keeps state in registers; the small arrays are copied
/// to locals (x42 style) and written back at the end.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn kernel<const B: usize, const N: usize, const SC: bool, const F: bool>(
    bank: &Bank,
    xo: &mut PairState,
    grp: &mut Group,
    sc: &ScCoeffs,
    delay: usize,
    x0: &[f32],
    x1: &[f32],
    y0: &mut [f32],
    y1: &mut [f32],
) {
    debug_assert!(N == 2 * B && N <= MAX_LANES);
    let n = x0.len().min(x1.len()).min(y0.len()).min(y1.len());
    let mut pk: [f32; N] = std::array::from_fn(|l| grp.pk[l]);
    let mut ms: [f32; N] = std::array::from_fn(|l| grp.ms[l]);
    let mut g: [f32; N] = std::array::from_fn(|l| grp.g[l]);
    let dg: [f32; N] = std::array::from_fn(|l| grp.dg[l]);
    let mut s1: [f64; N] = std::array::from_fn(|l| grp.sc[0][l]);
    let mut s2: [f64; N] = std::array::from_fn(|l| grp.sc[1][l]);
    let mask = grp.mask;
    let mut w = grp.pos;
    let ring = &mut grp.ring[..];
    if ring.len() < (mask + 1) * N {
        return;
    }
    for i in 0..n {
        let xin = [x0[i] as f64, x1[i] as f64];
        let bands = if B == 1 {
            let mut b = [[0.0; 2]; MAX_BANDS + 1];
            b[0] = xin;
            b
        } else {
            crossover::tick::<B, F>(bank, xo, xin)
        };
        let s: [f32; N] = std::array::from_fn(|l| bands[l / 2][l % 2] as f32);
        let mut d = s;
        if SC {
            for l in 0..N {
                let v = bands[l / 2][l % 2];
                let yv = madd::<F>(sc.b0[l], v, s1[l]);
                let t = madd::<F>(sc.b1[l], v, s2[l]);
                s1[l] = madd::<F>(sc.na1[l], yv, t);
                s2[l] = madd::<F>(sc.na2[l], yv, sc.b2[l] * v);
                d[l] = yv as f32;
            }
        }
        for l in 0..N {
            let a = d[l].abs();
            pk[l] = if a > pk[l] { a } else { pk[l] };
            ms[l] += d[l] * d[l];
        }
        let wi = w * N;
        ring[wi..wi + N].copy_from_slice(&s);
        let ri = (w.wrapping_sub(delay) & mask) * N;
        let mut p = [0.0f32; N];
        p.copy_from_slice(&ring[ri..ri + N]);
        for l in 0..N {
            g[l] += dg[l];
            p[l] *= g[l];
        }
        // Fixed-order tree sum over bands (four lanes = two bands × two channels at a time).
        let mut acc = [0.0f32; 4];
        for k in 0..B / 2 {
            for j in 0..4 {
                acc[j] += p[4 * k + j];
            }
        }
        if B % 2 == 1 {
            acc[0] += p[N - 2];
            acc[1] += p[N - 1];
        }
        y0[i] = acc[0] + acc[2];
        y1[i] = acc[1] + acc[3];
        w = (w + 1) & mask;
    }
    grp.pk[..N].copy_from_slice(&pk);
    grp.ms[..N].copy_from_slice(&ms);
    grp.g[..N].copy_from_slice(&g);
    grp.sc[0][..N].copy_from_slice(&s1);
    grp.sc[1][..N].copy_from_slice(&s2);
    grp.pos = w;
}

#[allow(clippy::too_many_arguments)]
fn dispatch(
    bands: usize,
    sc_on: bool,
    fma: bool,
    bank: &Bank,
    xo: &mut PairState,
    grp: &mut Group,
    sc: &ScCoeffs,
    delay: usize,
    x: [&[f32]; 2],
    y: [&mut [f32]; 2],
) {
    let [x0, x1] = x;
    let [y0, y1] = y;
    macro_rules! go {
        ($b:literal, $n:literal, $v:literal) => {
            match (sc_on, fma) {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `fma` is true only when the CPU reported AVX2 and FMA at construction.
                (false, true) => unsafe {
                    super::avx::kernel::<$b, $v, false>(bank, xo, grp, sc, delay, x0, x1, y0, y1)
                },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                (true, true) => unsafe { super::avx::kernel::<$b, $v, true>(bank, xo, grp, sc, delay, x0, x1, y0, y1) },
                (false, _) => kernel::<$b, $n, false, false>(bank, xo, grp, sc, delay, x0, x1, y0, y1),
                (true, _) => kernel::<$b, $n, true, false>(bank, xo, grp, sc, delay, x0, x1, y0, y1),
            }
        };
    }
    match bands {
        1 => go!(1, 2, 1),
        2 => go!(2, 4, 1),
        3 => go!(3, 6, 1),
        4 => go!(4, 8, 1),
        5 => go!(5, 10, 2),
        _ => go!(6, 12, 2),
    }
}

/// [`gain_reduction_db`](super::curve::gain_reduction_db) rewritten with clamps only, so the control
/// loop vectorises: with `dc = clamp(d, −W/2, W/2)`, `gr = s·(dc + W/2)²/(2W) + s·max(d − W/2, 0)`,
/// which is 0 below the knee, the knee parabola inside it and `s·d` above (`s·W/2 + s·(d − W/2)`).
/// `inv_2w` is `1/(2W)`, 0 for a hard knee (then only `s·max(d, 0)` remains).
#[inline(always)]
fn gain_reduction_lanes(x: f32, t: f32, slope: f32, w: f32, inv_2w: f32) -> f32 {
    let d = x - t;
    let h = 0.5 * w;
    let dc = max(min(d, h), -h);
    let k = dc + h;
    slope * (k * k * inv_2w + max(d - h, 0.0))
}

/// `max` without NaN handling (operands are finite here), one instruction per lane.
#[inline(always)]
fn max(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

#[inline(always)]
fn min(a: f32, b: f32) -> f32 {
    if a < b {
        a
    } else {
        b
    }
}

/// Per-lane copies of the band parameters (lane = band × 2 + channel of a pair).
#[derive(Clone, Debug)]
struct LaneParams {
    thr: [f32; MAX_LANES],
    slope: [f32; MAX_LANES],
    knee: [f32; MAX_LANES],
    inv_2w: [f32; MAX_LANES],
    aa: [f32; MAX_LANES],
    ar: [f32; MAX_LANES],
    link: [f32; MAX_LANES],
    /// 1 for the RMS detector, 0 for peak.
    rms: [f32; MAX_LANES],
    offset_db: [f32; MAX_LANES],
    byp: [f32; MAX_LANES],
    act: [f32; MAX_LANES],
}

impl LaneParams {
    /// Lanes no band uses: no reduction, unity gain.
    const NEUTRAL: LaneParams = LaneParams {
        thr: [0.0; MAX_LANES],
        slope: [0.0; MAX_LANES],
        knee: [0.0; MAX_LANES],
        inv_2w: [0.0; MAX_LANES],
        aa: [0.0; MAX_LANES],
        ar: [0.0; MAX_LANES],
        link: [0.0; MAX_LANES],
        rms: [0.0; MAX_LANES],
        offset_db: [0.0; MAX_LANES],
        byp: [0.0; MAX_LANES],
        act: [1.0; MAX_LANES],
    };
}
