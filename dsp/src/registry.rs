//! Every node kind ballast knows, with its descriptor and a factory: the one list that config validation,
//! D-Bus introspection, `ballastctl` help and the tests iterate, so a new kind cannot be forgotten by any.

use std::ops::RangeInclusive;

use crate::param::KindDescriptor;
use crate::processor::Processor;
use crate::{compressor, generators, limiter, loudness, loudness_control, multiband};

/// How a node is shaped when it is made. Fixed for the node's life: changing it means a new node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Audio channels (inputs = outputs for processors; outputs for generators).
    pub channels: usize,
    /// Frequency bands (multiband only; ignored elsewhere).
    pub bands: usize,
}

/// Channel counts a node kind accepts (BS.1770 weights cover up to 5.1 plus two spare; 8 matches
/// `ballastctl measure`).
pub const CHANNELS: RangeInclusive<usize> = 1..=8;

/// One node kind.
pub struct KindEntry {
    pub descriptor: &'static KindDescriptor,
    /// True for sources (no audio inputs).
    pub generator: bool,
    /// Band counts the kind accepts; `None` for kinds without bands.
    pub bands: Option<RangeInclusive<usize>>,
    make: fn(Shape) -> Box<dyn Processor>,
}

impl KindEntry {
    /// A new, unprepared node. `shape` must be valid for the kind (see [`create`] for the checked form).
    pub fn make(&self, shape: Shape) -> Box<dyn Processor> {
        (self.make)(shape)
    }
}

static KINDS: [KindEntry; 9] = [
    KindEntry {
        descriptor: &compressor::DESCRIPTOR,
        generator: false,
        bands: None,
        make: |s| Box::new(compressor::Compressor::new(s.channels)),
    },
    KindEntry {
        descriptor: &multiband::DESCRIPTOR,
        generator: false,
        bands: Some(2..=6),
        make: |s| Box::new(multiband::Multiband::new(s.channels, s.bands)),
    },
    KindEntry {
        descriptor: &limiter::DESCRIPTOR,
        generator: false,
        bands: None,
        make: |s| Box::new(limiter::Limiter::new(s.channels)),
    },
    KindEntry {
        descriptor: &loudness::DESCRIPTOR,
        generator: false,
        bands: None,
        make: |s| Box::new(loudness::LoudnessMeter::new(s.channels)),
    },
    KindEntry {
        descriptor: &loudness_control::DESCRIPTOR,
        generator: false,
        bands: None,
        make: |s| Box::new(loudness_control::LoudnessControl::new(s.channels)),
    },
    KindEntry {
        descriptor: &generators::TONE_DESCRIPTOR,
        generator: true,
        bands: None,
        make: |s| Box::new(generators::Tone::new(s.channels)),
    },
    KindEntry {
        descriptor: &generators::NOISE_DESCRIPTOR,
        generator: true,
        bands: None,
        make: |s| Box::new(generators::Noise::new(s.channels)),
    },
    KindEntry {
        descriptor: &generators::SWEEP_DESCRIPTOR,
        generator: true,
        bands: None,
        make: |s| Box::new(generators::Sweep::new(s.channels)),
    },
    KindEntry {
        descriptor: &generators::SYNTH_DESCRIPTOR,
        generator: true,
        bands: None,
        make: |s| Box::new(generators::Synth::new(s.channels)),
    },
];

/// All node kinds, in a stable order.
pub fn kinds() -> &'static [KindEntry] {
    &KINDS
}

/// The kind named `kind` (the config's `kind = "…"`).
pub fn find(kind: &str) -> Option<&'static KindEntry> {
    KINDS.iter().find(|k| k.descriptor.kind == kind)
}

/// Why a node could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateError {
    UnknownKind(String),
    Channels { kind: &'static str, got: usize },
    Bands { kind: &'static str, got: usize, min: usize, max: usize },
}

impl std::fmt::Display for CreateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CreateError::UnknownKind(k) => {
                let names: Vec<&str> = KINDS.iter().map(|k| k.descriptor.kind).collect();
                write!(f, "unknown node kind \"{k}\" (known: {})", names.join(", "))
            }
            CreateError::Channels { kind, got } => {
                write!(f, "{kind}: {got} channels; allowed {}..={}", CHANNELS.start(), CHANNELS.end())
            }
            CreateError::Bands { kind, got, min, max } => write!(f, "{kind}: {got} bands; allowed {min}..={max}"),
        }
    }
}

impl std::error::Error for CreateError {}

/// Makes a node of `kind` after checking `shape` against what the kind accepts.
pub fn create(kind: &str, shape: Shape) -> Result<Box<dyn Processor>, CreateError> {
    let entry = find(kind).ok_or_else(|| CreateError::UnknownKind(kind.to_string()))?;
    let name = entry.descriptor.kind;
    if !CHANNELS.contains(&shape.channels) {
        return Err(CreateError::Channels { kind: name, got: shape.channels });
    }
    if let Some(b) = &entry.bands {
        if !b.contains(&shape.bands) {
            return Err(CreateError::Bands { kind: name, got: shape.bands, min: *b.start(), max: *b.end() });
        }
    }
    Ok(entry.make(shape))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn kinds_are_unique_and_self_consistent() {
        let mut names = HashSet::new();
        for k in kinds() {
            assert!(names.insert(k.descriptor.kind), "duplicate kind {}", k.descriptor.kind);
            let node = k.make(Shape { channels: 2, bands: 4 });
            assert_eq!(node.descriptor().kind, k.descriptor.kind);
            let (i, o) = node.channels();
            assert_eq!(o, 2, "{}", k.descriptor.kind);
            assert_eq!(i, if k.generator { 0 } else { 2 }, "{}", k.descriptor.kind);
        }
    }

    #[test]
    fn descriptors_are_well_formed() {
        for k in kinds() {
            let d = k.descriptor;
            for table in [d.params, d.band_params] {
                let mut ids = HashSet::new();
                let mut keys = HashSet::new();
                for p in table {
                    assert!(ids.insert(p.id), "{}: duplicate id {:?}", d.kind, p.id);
                    assert!(keys.insert(p.key), "{}: duplicate key {}", d.kind, p.key);
                    assert!(p.id.split_band().is_none(), "{}.{}: id collides with band ids", d.kind, p.key);
                    assert!(!p.doc.is_empty(), "{}.{}: no doc", d.kind, p.key);
                    assert!(p.min <= p.default && p.default <= p.max, "{}.{}: default out of range", d.kind, p.key);
                    assert!(p.validate(p.default).is_ok(), "{}.{}: default refused", d.kind, p.key);
                    assert!(
                        p.key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                        "{}.{}: keys are snake_case",
                        d.kind,
                        p.key
                    );
                }
            }
        }
    }

    #[test]
    fn create_checks_shape() {
        assert!(create("multiband", Shape { channels: 2, bands: 4 }).is_ok());
        assert!(matches!(create("multiband", Shape { channels: 2, bands: 7 }), Err(CreateError::Bands { .. })));
        assert!(matches!(create("limiter", Shape { channels: 0, bands: 0 }), Err(CreateError::Channels { .. })));
        let Err(e) = create("compresor", Shape { channels: 2, bands: 0 }) else { panic!("made an unknown kind") };
        assert!(e.to_string().contains("compressor"), "{e}");
    }
}
