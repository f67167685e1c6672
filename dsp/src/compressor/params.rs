//! Parameter descriptors shared by the compressor (node level) and the multiband compressor (per
//! band). Ids are stable: never renumber.

use crate::param::{ParamDescriptor, ParamId, Scale, Smoothing, Unit};

use super::engine::{GAIN_RAMP_MS, MAX_LOOKAHEAD_MS, SWITCH_RAMP_MS};

const fn p(
    id: u32,
    key: &'static str,
    name: &'static str,
    unit: Unit,
    range: (f32, f32, f32),
    scale: Scale,
    smoothing: Smoothing,
    doc: &'static str,
) -> ParamDescriptor {
    ParamDescriptor { id: ParamId(id), key, name, unit, min: range.0, max: range.1, default: range.2, scale, smoothing, doc }
}

pub const THRESHOLD: ParamDescriptor = p(
    1,
    "threshold_db",
    "Threshold",
    Unit::Db,
    (-80.0, 0.0, -20.0),
    Scale::Linear,
    Smoothing::None,
    "Level above which the gain is reduced (the attack/release smoothing makes changes glide).",
);
pub const RATIO: ParamDescriptor = p(
    2,
    "ratio",
    "Ratio",
    Unit::Ratio,
    (1.0, f32::INFINITY, 4.0),
    Scale::Log,
    Smoothing::None,
    "Input dB per output dB above the threshold; infinity limits to the threshold.",
);
pub const ATTACK: ParamDescriptor = p(
    3,
    "attack_ms",
    "Attack",
    Unit::Ms,
    (0.1, 500.0, 10.0),
    Scale::Log,
    Smoothing::None,
    "Time for the gain reduction to cover 1 - 1/e of an increase (one-pole time constant).",
);
pub const RELEASE: ParamDescriptor = p(
    4,
    "release_ms",
    "Release",
    Unit::Ms,
    (1.0, 5000.0, 100.0),
    Scale::Log,
    Smoothing::None,
    "Time for the gain reduction to cover 1 - 1/e of a decrease (one-pole time constant).",
);
pub const KNEE: ParamDescriptor = p(
    5,
    "knee_db",
    "Knee width",
    Unit::Db,
    (0.0, 24.0, 6.0),
    Scale::Linear,
    Smoothing::None,
    "Width of the soft knee centred on the threshold; 0 is a hard knee.",
);
pub const MAKEUP: ParamDescriptor = p(
    6,
    "makeup_db",
    "Makeup gain",
    Unit::Db,
    (-24.0, 24.0, 0.0),
    Scale::Linear,
    Smoothing::Linear { ms: GAIN_RAMP_MS },
    "Gain added after compression.",
);
pub const DETECTOR: ParamDescriptor = p(
    7,
    "detector",
    "Detector",
    Unit::Choice(&["peak", "rms"]),
    (0.0, 1.0, 0.0),
    Scale::Linear,
    Smoothing::None,
    "Level detector: peak (envelope of |x|) or RMS (10 ms mean square; a full-scale sine reads -3.01 dBFS).",
);
pub const STEREO_LINK: ParamDescriptor = p(
    8,
    "stereo_link_pct",
    "Stereo link",
    Unit::Percent,
    (0.0, 100.0, 100.0),
    Scale::Linear,
    Smoothing::None,
    "0 compresses channels independently, 100 applies the largest channel's gain reduction to all.",
);
pub const LOOKAHEAD: ParamDescriptor = p(
    9,
    "lookahead_ms",
    "Lookahead",
    Unit::Ms,
    (0.0, MAX_LOOKAHEAD_MS, 0.0),
    Scale::Linear,
    Smoothing::None,
    "Delay of the audio against the detector, reported as latency (a change takes effect at once).",
);
pub const SIDECHAIN_HPF: ParamDescriptor = p(
    10,
    "sidechain_hpf_hz",
    "Sidechain high-pass",
    Unit::Hz,
    (0.0, 1000.0, 0.0),
    Scale::Linear,
    Smoothing::None,
    "Cutoff of a 12 dB/oct high-pass in front of the detector, so bass drives less reduction; 0 is off.",
);
pub const OUTPUT_GAIN: ParamDescriptor = p(
    11,
    "output_gain_db",
    "Band output gain",
    Unit::Db,
    (-24.0, 24.0, 0.0),
    Scale::Linear,
    Smoothing::Linear { ms: GAIN_RAMP_MS },
    "Gain of the band after its compressor.",
);
pub const SOLO: ParamDescriptor = p(
    12,
    "solo",
    "Solo",
    Unit::Bool,
    (0.0, 1.0, 0.0),
    Scale::Linear,
    Smoothing::Linear { ms: SWITCH_RAMP_MS },
    "When any band is soloed, only soloed bands are heard (faded, no click).",
);
pub const MUTE: ParamDescriptor = p(
    13,
    "mute",
    "Mute",
    Unit::Bool,
    (0.0, 1.0, 0.0),
    Scale::Linear,
    Smoothing::Linear { ms: SWITCH_RAMP_MS },
    "Silences the band (faded, no click).",
);
pub const BYPASS: ParamDescriptor = p(
    14,
    "bypass",
    "Bypass",
    Unit::Bool,
    (0.0, 1.0, 0.0),
    Scale::Linear,
    Smoothing::Linear { ms: SWITCH_RAMP_MS },
    "Passes the band at unity gain (crossfaded; filters and latency unchanged).",
);
