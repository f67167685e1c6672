//! Renders the compressor-estimator's training set (see `ballast_models::dataset` for what it holds).
//!
//! `build-dataset --out DIR [--train N --validation N --test N] [--seed S]`

use std::path::PathBuf;
use std::time::Instant;

use ballast_models::dataset::{self, Config, DEFAULT_MUSIC_DIR};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser, Debug)]
#[command(about = "Render (dry, settings, wet) compressor examples and their features for training")]
struct Args {
    /// Output directory (created; existing files of the same names are replaced).
    #[arg(long)]
    out: PathBuf,
    /// Directory of the wesnoth-1.16-music .ogg tracks.
    #[arg(long, default_value = DEFAULT_MUSIC_DIR)]
    music_dir: PathBuf,
    /// Seed; the same seed and counts give byte-identical files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 20_000)]
    train: usize,
    #[arg(long, default_value_t = 2_000)]
    validation: usize,
    #[arg(long, default_value_t = 2_000)]
    test: usize,
    /// Share of each split that is synthetic material (bursty noise, tone bursts).
    #[arg(long, default_value_t = 0.25)]
    synthetic_fraction: f64,
    /// Share of segments rendered through the multiband node (2-4 bands, random crossovers); each band is
    /// one example.
    #[arg(long, default_value_t = 0.0)]
    multiband_fraction: f64,
    /// Use only the first N tracks (by name) of each split (quick runs).
    #[arg(long)]
    tracks_per_split: Option<usize>,
    /// No progress bar (logs and CI).
    #[arg(long)]
    quiet: bool,
}

fn main() {
    let a = Args::parse();
    let cfg = Config {
        out: a.out,
        music_dir: a.music_dir,
        seed: a.seed,
        counts: [a.train, a.validation, a.test],
        synthetic_fraction: a.synthetic_fraction,
        tracks_per_split: a.tracks_per_split,
        multiband_fraction: a.multiband_fraction,
    };
    let total: usize = cfg.counts.iter().sum();
    let bar = if a.quiet { ProgressBar::hidden() } else { ProgressBar::new(total as u64) };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} examples  {per_sec}  eta {eta}").expect("static template"),
    );
    let t0 = Instant::now();
    let result = dataset::build(&cfg, &mut |done, _| bar.set_position(done as u64));
    bar.finish_and_clear();
    match result {
        Ok(s) => {
            let secs = t0.elapsed().as_secs_f64();
            for (name, x) in dataset::SPLITS.iter().zip(&s) {
                println!(
                    "{name}: {} examples ({} music, {} synthetic, {} multiband bands), {} identifiable",
                    x.examples, x.music, x.synthetic, x.multiband, x.identifiable
                );
            }
            println!(
                "{total} examples in {secs:.1} s ({:.1} examples/s) -> {}",
                total as f64 / secs.max(1e-9),
                cfg.out.display()
            );
        }
        Err(e) => {
            eprintln!("build-dataset: {e}");
            std::process::exit(1);
        }
    }
}
