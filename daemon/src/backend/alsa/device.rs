//! Opening and configuring the PCMs, off the RT thread: access, sample format, channels, rate, period
//! and periods (hw params), start and wake-up thresholds (sw params), and linking capture to playback.
//! Every error names the device, the direction and the step that failed, with ALSA's own text.

use ::alsa::pcm::{Access, Format, HwParams, PCM};
use ::alsa::{Direction, ValueOr};

use super::AlsaOptions;

/// The sample formats the backend can exchange with a device, best first. The engine computes f32;
/// the integer formats are for devices that refuse float (`hw:` on most cards). Plug devices
/// (`plughw:`, `default`) accept float and convert themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleFormat {
    /// 32-bit float, native endian (`FLOAT`).
    F32,
    /// 32-bit signed integer, native endian (`S32`).
    S32,
    /// 16-bit signed integer, native endian (`S16`).
    S16,
}

impl SampleFormat {
    /// Bytes per sample.
    pub fn bytes(self) -> usize {
        match self {
            SampleFormat::F32 | SampleFormat::S32 => 4,
            SampleFormat::S16 => 2,
        }
    }

    /// ALSA's name of the format (native endian on this machine).
    pub fn name(self) -> &'static str {
        match self {
            SampleFormat::F32 => "FLOAT",
            SampleFormat::S32 => "S32",
            SampleFormat::S16 => "S16",
        }
    }

    fn alsa(self) -> Format {
        match self {
            SampleFormat::F32 => Format::float(),
            SampleFormat::S32 => Format::s32(),
            SampleFormat::S16 => Format::s16(),
        }
    }
}

/// What the device actually gave (hw params as negotiated, read back after they were set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlsaFormat {
    pub sample_rate: u32,
    /// Frames per period: the block the engine runs each cycle.
    pub period: usize,
    pub periods: u32,
    /// Playback buffer size in frames (usually `period × periods`).
    pub buffer_frames: usize,
    pub playback_format: SampleFormat,
    /// `None` without capture.
    pub capture_format: Option<SampleFormat>,
    /// Frames of silence written to playback before audio starts (and again after each xrun): what
    /// the output lags the engine by, on top of the graph's own latency.
    pub prime_frames: usize,
    /// Capture and playback are linked (`snd_pcm_link`: they start and stop together). Plugins
    /// other than `hw` usually cannot be linked; they are then started one after the other.
    pub linked: bool,
}

/// Open, configured PCMs, ready to prime and start.
pub(crate) struct Session {
    pub playback: PCM,
    pub capture: Option<PCM>,
    pub format: AlsaFormat,
}

/// One stream as configured.
struct Stream {
    format: SampleFormat,
    sample_rate: u32,
    period: usize,
    periods: u32,
    buffer: usize,
}

fn what(dir: Direction) -> &'static str {
    match dir {
        Direction::Playback => "playback",
        Direction::Capture => "capture",
    }
}

/// Opens and configures playback (and capture when `opts.inputs > 0`) asking for `sample_rate`.
/// The rate the device gave may differ: the caller decides whether that is an error.
pub(crate) fn open(opts: &AlsaOptions, sample_rate: u32) -> Result<Session, String> {
    let (playback, p) =
        open_stream(&opts.device, Direction::Playback, opts.outputs, sample_rate, opts.period, opts.periods)?;
    let mut capture_format = None;
    let mut capture = None;
    let mut linked = false;
    if opts.inputs > 0 {
        let name = opts.capture_device.as_deref().unwrap_or(&opts.device);
        // Capture asks for what playback got, so both run on the same period clock.
        let (pcm, c) = open_stream(name, Direction::Capture, opts.inputs, p.sample_rate, p.period, p.periods)?;
        if c.sample_rate != p.sample_rate || c.period != p.period {
            return Err(format!(
                "ALSA capture device \"{name}\" runs at {} Hz with {}-frame periods but playback device \"{}\" \
                 at {} Hz with {}-frame periods; the backend needs both alike",
                c.sample_rate, c.period, opts.device, p.sample_rate, p.period
            ));
        }
        // Linking fails on most plugins (ENOSYS); they are then started one after the other.
        linked = playback.link(&pcm).is_ok();
        capture_format = Some(c.format);
        capture = Some(pcm);
    }
    Ok(Session {
        playback,
        capture,
        format: AlsaFormat {
            sample_rate: p.sample_rate,
            period: p.period,
            periods: p.periods,
            buffer_frames: p.buffer,
            playback_format: p.format,
            capture_format,
            prime_frames: p.buffer,
            linked,
        },
    })
}

fn open_stream(
    name: &str,
    dir: Direction,
    channels: usize,
    sample_rate: u32,
    period: usize,
    periods: u32,
) -> Result<(PCM, Stream), String> {
    let dir_name = what(dir);
    let ctx = |step: &str, e: ::alsa::Error| format!("ALSA {dir_name} device \"{name}\": {step}: {e}");
    let pcm = PCM::new(name, dir, false).map_err(|e| ctx("cannot open it", e))?;
    let stream = {
        let hw = HwParams::any(&pcm).map_err(|e| ctx("cannot read its hardware parameters", e))?;
        hw.set_access(Access::RWInterleaved).map_err(|e| ctx("no interleaved read/write access", e))?;
        let format = [SampleFormat::F32, SampleFormat::S32, SampleFormat::S16]
            .into_iter()
            .find(|f| hw.test_format(f.alsa()).is_ok())
            .ok_or_else(|| {
                format!(
                    "ALSA {dir_name} device \"{name}\" offers none of the sample formats FLOAT, S32, S16; \
                     use a plug device (\"plughw:…\") to convert"
                )
            })?;
        hw.set_format(format.alsa()).map_err(|e| ctx("cannot set the sample format", e))?;
        if hw.set_channels(channels as u32).is_err() {
            let min = hw.get_channels_min().unwrap_or(0);
            let max = hw.get_channels_max().unwrap_or(0);
            return Err(format!(
                "ALSA {dir_name} device \"{name}\" cannot open {channels} channels (it offers {min} to {max}); \
                 the graph has {channels} {}",
                if dir == Direction::Playback { "outputs" } else { "inputs" }
            ));
        }
        hw.set_rate_near(sample_rate, ValueOr::Nearest).map_err(|e| ctx("cannot set a sample rate", e))?;
        hw.set_period_size_near(period as ::alsa::pcm::Frames, ValueOr::Nearest)
            .map_err(|e| ctx(&format!("cannot set a period near {period} frames"), e))?;
        hw.set_periods_near(periods, ValueOr::Nearest).map_err(|e| ctx(&format!("cannot set {periods} periods"), e))?;
        pcm.hw_params(&hw).map_err(|e| ctx("cannot apply the hardware parameters", e))?;
        let cur = pcm.hw_params_current().map_err(|e| ctx("cannot read back the hardware parameters", e))?;
        let read = |e| ctx("cannot read back the hardware parameters", e);
        Stream {
            format,
            sample_rate: cur.get_rate().map_err(read)?,
            period: cur.get_period_size().map_err(read)? as usize,
            periods: cur.get_periods().map_err(read)?,
            buffer: cur.get_buffer_size().map_err(read)? as usize,
        }
    };
    {
        let sw = pcm.sw_params_current().map_err(|e| ctx("cannot read its software parameters", e))?;
        let set = |e| ctx("cannot set its software parameters", e);
        sw.set_avail_min(stream.period as ::alsa::pcm::Frames).map_err(set)?;
        // Never start on a fill level: the loop primes playback and starts both streams itself, the same
        // way at first start and after every xrun.
        let boundary = sw.get_boundary().map_err(set)?;
        sw.set_start_threshold(boundary).map_err(set)?;
        pcm.sw_params(&sw).map_err(set)?;
    }
    Ok((pcm, stream))
}
