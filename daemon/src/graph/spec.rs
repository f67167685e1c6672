//! What a graph is, independent of where it came from: the config validator produces a [`GraphSpec`],
//! the graph compiler consumes one. Everything in it has already been validated (kinds exist, shapes
//! are allowed, parameter values are in range, links name things that exist and their channel counts
//! fit by [`channel_map`]); the compiler still checks and reports, never panics, on a bad spec.

use ballast_dsp::registry::Shape;
use ballast_dsp::ParamId;

/// One graph: the daemon's audio ports, its nodes and the links between them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GraphSpec {
    /// Audio input port names, in channel order: the `in` bus has `inputs.len()` channels.
    pub inputs: Vec<String>,
    /// Audio output port names, in channel order: the `out` bus has `outputs.len()` channels.
    pub outputs: Vec<String>,
    pub nodes: Vec<NodeSpec>,
    pub links: Vec<Link>,
}

/// One node: a name unique in the graph, its kind (a registry name), its shape, and the parameter
/// values the config set (the rest keep the values a fresh node of the kind starts with: the
/// descriptor's defaults, except multiband bands, which start staggered for a broadcast chain).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    pub name: String,
    pub kind: String,
    pub shape: Shape,
    pub params: Vec<(ParamId, f32)>,
}

/// Audio flows from `from` (a source: the `in` bus or a node's output) to `to` (a sink: the `out` bus
/// or a node's input). Several links into one sink are summed; one source may feed many sinks.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub from: Endpoint,
    pub to: Endpoint,
}

/// One side of a link. `channel: None` means the whole bus (all channels); `Some(c)` one channel of it
/// (config: `node:port`, where a port is `in`/`out` for the bus or `in_1`, `out_2`… for one channel,
/// and for the daemon's own buses the port names listed under `[ports]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// As a source: the daemon's audio inputs. As a sink: the daemon's audio outputs.
    Io { channel: Option<usize> },
    /// As a source: the node's output. As a sink: the node's input. `node` indexes `GraphSpec::nodes`.
    Node { node: usize, channel: Option<usize> },
}

/// How the channels of a source of width `from` land on a sink of width `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelMap {
    /// Equal widths: channel `i` to channel `i`.
    OneToOne,
    /// Mono source into a wider sink: the one channel is copied to every sink channel.
    Spread,
    /// Wider source into a mono sink: the channels are averaged (sum × 1/from), so a stereo signal
    /// with identical channels keeps its level.
    Downmix,
}

/// The mono/stereo rule, in one place for the validator and the compiler: equal widths map one to one,
/// mono spreads to any width, any width averages down to mono; anything else (e.g. 2 into 6) is a
/// channel-count mismatch, which must be resolved with explicit per-channel links.
pub fn channel_map(from: usize, to: usize) -> Option<ChannelMap> {
    match (from, to) {
        (0, _) | (_, 0) => None,
        (a, b) if a == b => Some(ChannelMap::OneToOne),
        (1, _) => Some(ChannelMap::Spread),
        (_, 1) => Some(ChannelMap::Downmix),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_stereo_rules() {
        assert_eq!(channel_map(2, 2), Some(ChannelMap::OneToOne));
        assert_eq!(channel_map(1, 6), Some(ChannelMap::Spread));
        assert_eq!(channel_map(6, 1), Some(ChannelMap::Downmix));
        assert_eq!(channel_map(1, 1), Some(ChannelMap::OneToOne));
        assert_eq!(channel_map(2, 6), None);
        assert_eq!(channel_map(0, 2), None);
    }
}
