//! Multiband compressor (node kind `"multiband"`): an LR4 [`Crossover`](crate::crossover::Crossover)
//! into 2–6 bands, one compressor per band (the shared dynamics engine), the bands summed back.
//!
//! With every band at unity (ratio 1 or a threshold above the signal, no makeup, output gain 0 dB) the
//! output is the crossover's allpass sum: flat to ±0.01 dB. Bypass, solo and mute crossfade gains over
//! [`SWITCH_RAMP_MS`](crate::compressor::SWITCH_RAMP_MS) and never switch code paths, so latency and
//! filter state stay continuous (the x42/Fons Adriaensen approach: neutral values, not branches).
//!
//! Parameters: the split frequencies `crossover_1_hz`..`crossover_5_hz` and `lookahead_ms` at node
//! level; per band (`ParamId::band(band, id)`) the compressor's parameters plus `output_gain_db`,
//! `solo`, `mute`, `bypass`. Meter 0, per band: gain reduction in dB.

use crate::compressor::engine::{BandParam, Engine};
use crate::compressor::params::*;
use crate::crossover::{DEFAULT_SPLITS_HZ, MAX_BANDS, MAX_SPLITS};
use crate::param::{KindDescriptor, MeterDescriptor, ParamDescriptor, ParamError, ParamId, Scale, Smoothing, Unit};
use crate::processor::Processor;

/// Node-level ids (stable). Split `i` (1-based) is `ParamId(i)`.
pub mod ids {
    use crate::param::ParamId;
    pub const CROSSOVER_1_HZ: ParamId = ParamId(1);
    pub const CROSSOVER_2_HZ: ParamId = ParamId(2);
    pub const CROSSOVER_3_HZ: ParamId = ParamId(3);
    pub const CROSSOVER_4_HZ: ParamId = ParamId(4);
    pub const CROSSOVER_5_HZ: ParamId = ParamId(5);
    pub const LOOKAHEAD_MS: ParamId = ParamId(6);
    /// Per-band ids (combine with [`ParamId::band`]); the shared ones equal the compressor's.
    pub mod band {
        use crate::param::ParamId;
        // The compressor's own ids, so a band and a single-band compressor cannot drift apart.
        pub use crate::compressor::ids::{
            ATTACK_MS, DETECTOR, KNEE_DB, MAKEUP_DB, RATIO, RELEASE_MS, SIDECHAIN_HPF_HZ, STEREO_LINK_PCT, THRESHOLD_DB,
        };
        pub const OUTPUT_GAIN_DB: ParamId = ParamId(11);
        pub const SOLO: ParamId = ParamId(12);
        pub const MUTE: ParamId = ParamId(13);
        pub const BYPASS: ParamId = ParamId(14);
    }
}

/// Index of the per-band gain-reduction meter.
pub const METER_GAIN_REDUCTION: usize = 0;

const fn split(i: u32, key: &'static str, name: &'static str) -> ParamDescriptor {
    ParamDescriptor {
        id: ParamId(i),
        key,
        name,
        unit: Unit::Hz,
        min: 20.0,
        max: 20_000.0,
        default: DEFAULT_SPLITS_HZ[i as usize - 1],
        scale: Scale::Log,
        smoothing: Smoothing::Logarithmic { ms: crate::crossover::FREQ_GLIDE_MS },
        doc: "Split frequency (LR4) below band i+1; clamped to 0.45 x Nyquist; unused beyond bands - 1.",
    }
}

static METERS: [MeterDescriptor; 1] =
    [MeterDescriptor { key: "gain_reduction_db", name: "Gain reduction", unit: Unit::Db, per_band: true }];

static LOOKAHEAD_MB: ParamDescriptor = ParamDescriptor { id: ids::LOOKAHEAD_MS, ..LOOKAHEAD };

/// The multiband compressor's kind descriptor.
pub static DESCRIPTOR: KindDescriptor = KindDescriptor {
    kind: "multiband",
    doc: "Linkwitz-Riley (LR4) crossover into 2-6 bands, a compressor per band, bands summed (allpass at unity).",
    params: &[
        split(1, "crossover_1_hz", "Crossover 1"),
        split(2, "crossover_2_hz", "Crossover 2"),
        split(3, "crossover_3_hz", "Crossover 3"),
        split(4, "crossover_4_hz", "Crossover 4"),
        split(5, "crossover_5_hz", "Crossover 5"),
        LOOKAHEAD_MB,
    ],
    band_params: &[
        THRESHOLD,
        RATIO,
        ATTACK,
        RELEASE,
        KNEE,
        MAKEUP,
        DETECTOR,
        STEREO_LINK,
        SIDECHAIN_HPF,
        OUTPUT_GAIN,
        SOLO,
        MUTE,
        BYPASS,
    ],
    meters: &METERS,
};

/// Per-band defaults of DESIGN.md's broadcast example (threshold, ratio, attack, release), low to high.
const BROADCAST: [(f32, f32, f32, f32); 4] =
    [(-24.0, 2.0, 30.0, 300.0), (-22.0, 3.0, 15.0, 200.0), (-20.0, 3.0, 8.0, 150.0), (-20.0, 4.0, 3.0, 100.0)];

fn band_param(id: ParamId) -> Option<BandParam> {
    use ids::band::*;
    Some(match id {
        THRESHOLD_DB => BandParam::Threshold,
        RATIO => BandParam::Ratio,
        ATTACK_MS => BandParam::Attack,
        RELEASE_MS => BandParam::Release,
        KNEE_DB => BandParam::Knee,
        MAKEUP_DB => BandParam::Makeup,
        DETECTOR => BandParam::Detector,
        STEREO_LINK_PCT => BandParam::Link,
        SIDECHAIN_HPF_HZ => BandParam::ScHpf,
        OUTPUT_GAIN_DB => BandParam::OutGain,
        SOLO => BandParam::Solo,
        MUTE => BandParam::Mute,
        BYPASS => BandParam::Bypass,
        _ => return None,
    })
}

/// The multiband compressor.
#[derive(Clone, Debug)]
pub struct Multiband {
    engine: Engine,
    splits_hz: [f32; MAX_SPLITS],
}

impl Multiband {
    /// A multiband compressor with `bands` bands (clamped to 2..=6) for `channels` channels. Defaults
    /// follow DESIGN.md's broadcast chain: splits at 120/1000/6000 Hz, per-band threshold, ratio,
    /// attack and release from its table (for other band counts each band takes the row nearest its
    /// relative position), knee 6 dB, peak detector, full stereo link.
    pub fn new(channels: usize, bands: usize) -> Self {
        let bands = bands.clamp(2, MAX_BANDS);
        let mut m = Multiband { engine: Engine::new(channels, bands), splits_hz: DEFAULT_SPLITS_HZ };
        for p in DESCRIPTOR.params {
            let _ = m.set_param(p.id, p.default);
        }
        for b in 0..bands {
            for p in DESCRIPTOR.band_params {
                let _ = m.set_param(ParamId::band(b, p.id), p.default);
            }
            let row = BROADCAST[(b * (BROADCAST.len() - 1) + (bands - 1) / 2) / (bands - 1)];
            let _ = m.set_param(ParamId::band(b, ids::band::THRESHOLD_DB), row.0);
            let _ = m.set_param(ParamId::band(b, ids::band::RATIO), row.1);
            let _ = m.set_param(ParamId::band(b, ids::band::ATTACK_MS), row.2);
            let _ = m.set_param(ParamId::band(b, ids::band::RELEASE_MS), row.3);
        }
        m.engine.reset();
        m
    }

    pub fn bands(&self) -> usize {
        self.engine.bands()
    }

    /// Gain reduction of `band` in dB (≥ 0); NaN for a band the node does not have.
    pub fn gain_reduction_db(&self, band: usize) -> f32 {
        self.engine.gain_reduction_db(band)
    }

    /// The split frequencies in use (after clamping), Hz.
    pub fn crossover_frequencies(&self) -> &[f64] {
        self.engine.xover.frequencies()
    }
}

impl Processor for Multiband {
    fn descriptor(&self) -> &'static KindDescriptor {
        &DESCRIPTOR
    }

    fn prepare(&mut self, sample_rate: f64, max_block: usize) {
        self.engine.prepare(sample_rate, max_block);
    }

    fn reset(&mut self) {
        self.engine.reset();
    }

    fn set_param(&mut self, id: ParamId, value: f32) -> Result<(), ParamError> {
        let v = DESCRIPTOR.validate(id, value)?;
        match id.split_band() {
            None if id == ids::LOOKAHEAD_MS => self.engine.set_lookahead_ms(v),
            None => {
                let i = id.0 as usize - 1;
                if let Some(s) = self.splits_hz.get_mut(i) {
                    *s = v;
                    self.engine.xover.set_frequency(i, v as f64);
                }
            }
            Some((band, inner)) => {
                if band >= self.engine.bands() {
                    return Err(ParamError::UnknownParam(id));
                }
                if let Some(p) = band_param(inner) {
                    self.engine.set_band_param(band, p, v);
                }
            }
        }
        Ok(())
    }

    fn param(&self, id: ParamId) -> Option<f32> {
        match id.split_band() {
            None if id == ids::LOOKAHEAD_MS => Some(self.engine.lookahead_ms()),
            None => self.splits_hz.get((id.0 as usize).checked_sub(1)?).copied(),
            Some((band, inner)) => self.engine.band_param(band, band_param(inner)?),
        }
    }

    fn channels(&self) -> (usize, usize) {
        (self.engine.channels(), self.engine.channels())
    }

    fn process(&mut self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        self.engine.process(inputs, outputs);
    }

    fn latency_samples(&self) -> usize {
        self.engine.latency_samples()
    }

    fn meter(&self, index: usize, band: usize) -> f32 {
        if index == METER_GAIN_REDUCTION {
            self.gain_reduction_db(band)
        } else {
            f32::NAN
        }
    }
}
