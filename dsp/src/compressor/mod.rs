//! Feed-forward compressor (node kind `"compressor"`): peak or RMS detection, the DESIGN.md static
//! curve with a soft knee, attack/release smoothing of the gain reduction in dB (Giannoulis, Massberg
//! & Reiss, JAES 2012), stereo link, lookahead, sidechain high-pass, makeup gain.
//!
//! The signal path lives in [`engine`] (shared with the multiband compressor); this module holds the
//! node, its parameter table and the pure functions tests check it against ([`static_curve`]).
//!
//! Levels: dBFS, a full-scale sine peaks at 0 dBFS; the RMS detector reads it at −3.01 dBFS.

#[cfg(target_arch = "x86_64")]
mod avx;
pub mod curve;
pub(crate) mod engine;
pub mod fastmath;
pub(crate) mod params;

pub use curve::{gain_reduction_db, static_curve};
pub use engine::{CONTROL_PERIOD, GAIN_RAMP_MS, MAX_LOOKAHEAD_MS, RMS_WINDOW_MS, SWITCH_RAMP_MS};

use crate::param::{KindDescriptor, MeterDescriptor, ParamError, ParamId};
use crate::processor::Processor;
use engine::{BandParam, Engine};
use params::*;

/// Ids of the compressor's parameters (stable; never renumber).
pub mod ids {
    use crate::param::ParamId;
    pub const THRESHOLD_DB: ParamId = ParamId(1);
    pub const RATIO: ParamId = ParamId(2);
    pub const ATTACK_MS: ParamId = ParamId(3);
    pub const RELEASE_MS: ParamId = ParamId(4);
    pub const KNEE_DB: ParamId = ParamId(5);
    pub const MAKEUP_DB: ParamId = ParamId(6);
    pub const DETECTOR: ParamId = ParamId(7);
    pub const STEREO_LINK_PCT: ParamId = ParamId(8);
    pub const LOOKAHEAD_MS: ParamId = ParamId(9);
    pub const SIDECHAIN_HPF_HZ: ParamId = ParamId(10);
}

/// Index of the gain-reduction meter.
pub const METER_GAIN_REDUCTION: usize = 0;

static METERS: [MeterDescriptor; 1] = [MeterDescriptor {
    key: "gain_reduction_db",
    name: "Gain reduction",
    unit: crate::param::Unit::Db,
    per_band: false,
}];

/// The compressor's kind descriptor.
pub static DESCRIPTOR: KindDescriptor = KindDescriptor {
    kind: "compressor",
    doc: "Feed-forward compressor: peak or RMS detector, soft knee, attack/release in dB, stereo link, lookahead.",
    params: &[
        THRESHOLD, RATIO, ATTACK, RELEASE, KNEE, MAKEUP, DETECTOR, STEREO_LINK, LOOKAHEAD, SIDECHAIN_HPF,
    ],
    band_params: &[],
    meters: &METERS,
};

/// Maps a compressor parameter id to the engine's band parameter.
fn band_param(id: ParamId) -> Option<BandParam> {
    Some(match id {
        ids::THRESHOLD_DB => BandParam::Threshold,
        ids::RATIO => BandParam::Ratio,
        ids::ATTACK_MS => BandParam::Attack,
        ids::RELEASE_MS => BandParam::Release,
        ids::KNEE_DB => BandParam::Knee,
        ids::MAKEUP_DB => BandParam::Makeup,
        ids::DETECTOR => BandParam::Detector,
        ids::STEREO_LINK_PCT => BandParam::Link,
        ids::SIDECHAIN_HPF_HZ => BandParam::ScHpf,
        _ => return None,
    })
}

/// A compressor for any number of channels (linked by `stereo_link_pct`).
#[derive(Clone, Debug)]
pub struct Compressor {
    engine: Engine,
}

impl Compressor {
    /// A compressor for `channels` channels (at least 1) with the descriptor's defaults. Call
    /// [`Processor::prepare`] before processing.
    pub fn new(channels: usize) -> Self {
        let mut c = Compressor { engine: Engine::new(channels, 1) };
        for p in DESCRIPTOR.params {
            let _ = c.set_param(p.id, p.default);
        }
        c.engine.reset();
        c
    }

    /// Current gain reduction in dB (≥ 0, the largest over channels; updated every
    /// [`CONTROL_PERIOD`] samples).
    pub fn gain_reduction_db(&self) -> f32 {
        self.engine.gain_reduction_db(0)
    }
}

impl Processor for Compressor {
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
        if id == ids::LOOKAHEAD_MS {
            self.engine.set_lookahead_ms(v);
        } else if let Some(p) = band_param(id) {
            self.engine.set_band_param(0, p, v);
        }
        Ok(())
    }

    fn param(&self, id: ParamId) -> Option<f32> {
        if id == ids::LOOKAHEAD_MS {
            return Some(self.engine.lookahead_ms());
        }
        self.engine.band_param(0, band_param(id)?)
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

    fn meter(&self, index: usize, _band: usize) -> f32 {
        if index == METER_GAIN_REDUCTION {
            self.gain_reduction_db()
        } else {
            f32::NAN
        }
    }
}
