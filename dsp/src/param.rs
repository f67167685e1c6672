//! Parameter descriptors: one static table per node kind feeds validation, config, D-Bus and CLI help.
//!
//! Values travel as `f32` in the descriptor's unit. Choices are indices into [`Unit::Choice`], booleans
//! are 0 or 1. Ids are stable: they are what commands and saved state refer to, so never renumber one.

/// Stable identifier of a parameter within its node kind. Multiband per-band parameters carry the band
/// in the high byte (see [`ParamId::band`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub u32);

impl ParamId {
    /// The id of per-band parameter `param` of band `band` (0-based).
    pub const fn band(band: usize, param: ParamId) -> ParamId {
        ParamId(((band as u32 + 1) << 16) | param.0)
    }

    /// Splits a per-band id into (band, parameter); `None` for a node-level id.
    pub const fn split_band(self) -> Option<(usize, ParamId)> {
        let b = self.0 >> 16;
        if b == 0 {
            None
        } else {
            Some(((b - 1) as usize, ParamId(self.0 & 0xffff)))
        }
    }
}

/// What a value means, for display and parsing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unit {
    Db,
    Dbtp,
    Lufs,
    Lu,
    DbPerSecond,
    Ms,
    Hz,
    /// A compression ratio `R:1`; the descriptor's max may be `f32::INFINITY` (limiting).
    Ratio,
    Percent,
    Seconds,
    /// A plain number (multiplier, count, index).
    Scalar,
    Bool,
    /// One of several named options; the value is the index.
    Choice(&'static [&'static str]),
}

impl Unit {
    /// Short suffix for display (`dB`, `ms`…); empty for unitless values.
    pub fn suffix(self) -> &'static str {
        match self {
            Unit::Db => "dB",
            Unit::Dbtp => "dBTP",
            Unit::Lufs => "LUFS",
            Unit::Lu => "LU",
            Unit::DbPerSecond => "dB/s",
            Unit::Ms => "ms",
            Unit::Hz => "Hz",
            Unit::Ratio => ":1",
            Unit::Percent => "%",
            Unit::Seconds => "s",
            Unit::Scalar | Unit::Bool | Unit::Choice(_) => "",
        }
    }
}

/// How a control maps to its range (for UIs and random sampling).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// Logarithmic: frequencies, times, ratios.
    Log,
}

/// How a change of the parameter moves towards its new value inside the node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Smoothing {
    /// Applied at once (e.g. a choice, or a value the node already smooths itself, like a threshold
    /// that only moves a gain computer whose output is smoothed by attack/release).
    None,
    /// Linear ramp over the given time.
    Linear { ms: f32 },
    /// Ramp in the log domain (constant dB per second) over the given time; for gains.
    Logarithmic { ms: f32 },
}

/// Everything known about one parameter, statically.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParamDescriptor {
    pub id: ParamId,
    /// Config and D-Bus key; the unit is part of the name (`threshold_db`, `attack_ms`).
    pub key: &'static str,
    /// Human name.
    pub name: &'static str,
    pub unit: Unit,
    pub min: f32,
    pub max: f32,
    pub default: f32,
    pub scale: Scale,
    pub smoothing: Smoothing,
    /// One sentence for `--help`, config docs and introspection.
    pub doc: &'static str,
}

impl ParamDescriptor {
    /// Checks a value against the range (choices: a valid index; booleans: 0 or 1).
    pub fn validate(&self, value: f32) -> Result<f32, ParamError> {
        if value.is_nan() {
            return Err(ParamError::OutOfRange { id: self.id, min: self.min, max: self.max });
        }
        let ok = match self.unit {
            Unit::Bool => value == 0.0 || value == 1.0,
            Unit::Choice(options) => value >= 0.0 && value.fract() == 0.0 && (value as usize) < options.len(),
            _ => value >= self.min && value <= self.max,
        };
        if ok {
            Ok(value)
        } else {
            Err(ParamError::OutOfRange { id: self.id, min: self.min, max: self.max })
        }
    }
}

/// Why a parameter change was refused. `Copy`, so it can be returned from RT code.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamError {
    UnknownParam(ParamId),
    OutOfRange { id: ParamId, min: f32, max: f32 },
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamError::UnknownParam(id) => write!(f, "unknown parameter id {}", id.0),
            ParamError::OutOfRange { id, min, max } => {
                write!(f, "value of parameter {} out of range [{min}, {max}]", id.0)
            }
        }
    }
}

impl std::error::Error for ParamError {}

/// A meter a node publishes (read by non-RT code after each block).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeterDescriptor {
    pub key: &'static str,
    pub name: &'static str,
    pub unit: Unit,
    /// True when the node publishes one value per band (multiband); index = band.
    pub per_band: bool,
}

/// The static description of one node kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KindDescriptor {
    /// Config `kind = "…"`.
    pub kind: &'static str,
    pub doc: &'static str,
    /// Node-level parameters.
    pub params: &'static [ParamDescriptor],
    /// Parameters repeated per band (multiband only; empty otherwise). Ids combine with
    /// [`ParamId::band`].
    pub band_params: &'static [ParamDescriptor],
    pub meters: &'static [MeterDescriptor],
}

impl KindDescriptor {
    /// Looks up a node-level or per-band parameter by id.
    pub fn param(&self, id: ParamId) -> Option<&'static ParamDescriptor> {
        match id.split_band() {
            None => self.params.iter().find(|p| p.id == id),
            Some((_, inner)) => self.band_params.iter().find(|p| p.id == inner),
        }
    }

    /// Looks up a parameter by config key (node level only).
    pub fn param_by_key(&self, key: &str) -> Option<&'static ParamDescriptor> {
        self.params.iter().find(|p| p.key == key)
    }

    /// Validates `value` for `id`.
    pub fn validate(&self, id: ParamId, value: f32) -> Result<f32, ParamError> {
        self.param(id).ok_or(ParamError::UnknownParam(id))?.validate(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_ids_round_trip() {
        let id = ParamId::band(3, ParamId(7));
        assert_eq!(id.split_band(), Some((3, ParamId(7))));
        assert_eq!(ParamId(7).split_band(), None);
    }

    #[test]
    fn validation() {
        let d = ParamDescriptor {
            id: ParamId(1),
            key: "detector",
            name: "Detector",
            unit: Unit::Choice(&["peak", "rms"]),
            min: 0.0,
            max: 1.0,
            default: 0.0,
            scale: Scale::Linear,
            smoothing: Smoothing::None,
            doc: "",
        };
        assert!(d.validate(1.0).is_ok());
        assert!(d.validate(2.0).is_err());
        assert!(d.validate(0.5).is_err());
        assert!(d.validate(f32::NAN).is_err());
    }
}
