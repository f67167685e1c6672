//! Real music for tests: Debian's `wesnoth-1.16-music` (Ogg, GPL-2) decoded by ffmpeg. Both are installed
//! by `make test`; a missing one fails the test with that advice rather than skipping it.

use std::process::Command;

const MUSIC_DIR: &str = "/usr/share/games/wesnoth/1.16/data/core/music";

/// The first `seconds` of `track` at `sample_rate`, stereo, planar.
pub fn wesnoth(track: &str, sample_rate: f64, seconds: f64) -> Vec<Vec<f32>> {
    let path = format!("{MUSIC_DIR}/{track}");
    assert!(std::path::Path::new(&path).exists(), "{path} missing: run `make test` (installs wesnoth-1.16-music)");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i", &path, "-t", &seconds.to_string(), "-ar", &(sample_rate as u32).to_string()])
        .args(["-ac", "2", "-f", "f32le", "-"])
        .output()
        .expect("ffmpeg not found: run `make test` (installs ffmpeg)");
    assert!(out.status.success() && !out.stdout.is_empty(), "decoding {path} failed");
    let frames = out.stdout.len() / 8;
    let (mut l, mut r) = (Vec::with_capacity(frames), Vec::with_capacity(frames));
    for fr in out.stdout.chunks_exact(8) {
        l.push(f32::from_le_bytes([fr[0], fr[1], fr[2], fr[3]]));
        r.push(f32::from_le_bytes([fr[4], fr[5], fr[6], fr[7]]));
    }
    vec![l, r]
}
