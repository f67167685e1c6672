//! `ballastctl`: the command-line client of ballast. Today: offline loudness measurement of WAV files.

mod measure;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  other error (e.g. writing the result failed)
  2  bad input: the file is missing, unreadable, not a WAV file, truncated, in an unsupported format,
     outside 8–192 kHz or over 8 channels; also a wrong command line";

const MEASURE_ABOUT: &str = "\
Measures the loudness of a WAV file after ITU-R BS.1770-4 and EBU R128 (Tech 3341, Tech 3342).

Reads RIFF/WAVE with 16/24/32-bit integer or 32/64-bit float samples, 1–8 channels (6 channels are
L R C LFE Ls Rs: the LFE is not counted, the surrounds weigh +1.5 dB), any sample rate from 8 to
192 kHz. The file is streamed: any length is fine.

What the numbers mean:
  Integrated loudness (LUFS)  loudness of the whole file, gated: 400 ms blocks below −70 LUFS, then
                              blocks more than 10 LU below the ungated level, are ignored. EBU R128
                              asks for −23 LUFS in broadcast.
  Loudness range (LU)         spread of the 3 s short-term loudness: the 10th to 95th percentile of
                              the gated short-term values (EBU Tech 3342). Small for compressed
                              material, large for film and classical music.
  True peak (dBTP)            highest level of the signal between samples, found by oversampling to
                              at least 192 kHz (BS.1770-4 Annex 2); what a DAC or a lossy codec may
                              produce. EBU R128 allows at most −1 dBTP.
  Max momentary (LUFS)        highest loudness over any 400 ms window (updated every 100 ms).
  Max short-term (LUFS)       highest loudness over any 3 s window (updated every 100 ms).
  Sample peak (dBFS)          highest absolute sample value; 0 dBFS is full scale.

Silence (nothing above −70 LUFS) reads -inf (null in JSON); so does the loudness range then.";

/// ballast's command-line client.
#[derive(Parser, Debug)]
#[command(name = "ballastctl", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Measure integrated loudness, loudness range, true peak and more of a WAV file (EBU R128).
    #[command(long_about = MEASURE_ABOUT, after_help = EXIT_CODES)]
    Measure {
        /// The WAV file to measure.
        file: PathBuf,
        /// Print one JSON object instead of text. Keys: integrated_lufs, lra_lu, true_peak_dbtp,
        /// max_momentary_lufs, max_short_term_lufs, sample_peak_dbfs; each a number, or null when
        /// undefined (-inf).
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Measure { file, json } => match measure::measure(&file, true) {
            Ok(summary) => {
                let out = if json { measure::to_json(&summary) + "\n" } else { measure::to_text(&summary) };
                let mut stdout = std::io::stdout().lock();
                match stdout.write_all(out.as_bytes()).and_then(|_| stdout.flush()) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("ballastctl: writing the result: {e}");
                        ExitCode::from(1)
                    }
                }
            }
            Err(e) => {
                // One line: the file, then the problem (newlines in a path are shown escaped).
                let name = format!("{}", file.display()).escape_debug().to_string();
                eprintln!("ballastctl: {name}: {e}");
                ExitCode::from(2)
            }
        },
    }
}
