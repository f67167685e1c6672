//! The dataset builder on a tiny run: the real binary, real music (wesnoth-1.16-music through ffmpeg),
//! the files parse back with the declared shapes, and a second run with the same seed is identical.
use std::path::{Path, PathBuf};
use std::process::Command;

use ballast_models::features::{FEATURES, FRAMES, SIGNALS};
use ballast_models::npy::Npy;
use ballast_models::params::{ranges, CompressorParams};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("ballast-dataset-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(out: &Path) {
    let music = Path::new(ballast_models::dataset::DEFAULT_MUSIC_DIR);
    assert!(music.is_dir(), "{} is missing: apt-get install wesnoth-1.16-music (make deps does it)", music.display());
    let out = Command::new(env!("CARGO_BIN_EXE_build-dataset"))
        .args(["--train", "6", "--validation", "3", "--test", "3", "--seed", "42", "--tracks-per-split", "1"])
        .args(["--synthetic-fraction", "0.34", "--multiband-fraction", "0.5", "--quiet", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn tiny_run_parses_back_and_reproduces() {
    let a = TempDir::new("a");
    let b = TempDir::new("b");
    run(&a.0);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.0.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["seed"], 42);
    assert_eq!(meta["splits"]["test"]["tracks"][0], "frantic.ogg");
    assert_eq!(meta["splits"]["validation"]["tracks"][0], "knolls.ogg");
    let n_sources = meta["sources"].as_array().unwrap().len() as i32;
    for (split, n) in [("train", 6usize), ("validation", 3), ("test", 3)] {
        assert_eq!(meta["splits"][split]["examples"], n);
        let f = |w: &str| Npy::read(&a.0.join(format!("{split}_{w}.npy"))).unwrap();
        let x = f("x");
        assert_eq!(x.shape, vec![n, SIGNALS, FRAMES, FEATURES]);
        let xv = x.to_f32().unwrap();
        assert!(xv.iter().all(|v| v.is_finite() && (-100.0..=40.0).contains(v)));
        let y = f("y").to_f32().unwrap();
        let yn = f("y_norm").to_f32().unwrap();
        assert_eq!(y.len(), n * 6);
        let r = ranges();
        for (e, (row, row_n)) in y.chunks(6).zip(yn.chunks(6)).enumerate() {
            for i in 0..6 {
                assert!((r[i].min..=r[i].max).contains(&row[i]), "example {e} {}: {}", r[i].key, row[i]);
            }
            let p = CompressorParams::from_array(row.try_into().unwrap());
            assert_eq!(p.normalised().to_vec(), row_n.to_vec());
        }
        let id = f("identifiable").to_u8().unwrap();
        let gr = f("max_gr_db").to_f32().unwrap();
        for (i, g) in id.iter().zip(&gr) {
            assert_eq!(*i == 1, *g >= 0.5);
        }
        assert_eq!(meta["splits"][split]["identifiable"], id.iter().filter(|&&v| v == 1).count());
        let band = f("band").to_i32().unwrap();
        let bands = f("bands").to_i32().unwrap();
        for (b, k) in band.iter().zip(&bands) {
            assert!((1..=4).contains(k) && (0..*k).contains(b), "band {b} of {k}");
        }
        assert_eq!(meta["splits"][split]["multiband"], bands.iter().filter(|&&k| k > 1).count());
        let src = f("source").to_i32().unwrap();
        assert!(src.iter().all(|&s| (0..n_sources).contains(&s)));
        // The wet signal of an example with gain reduction differs from its dry signal.
        for e in 0..n {
            let ex = &xv[e * SIGNALS * FRAMES * FEATURES..(e + 1) * SIGNALS * FRAMES * FEATURES];
            let (dry, wet) = ex.split_at(FRAMES * FEATURES);
            if id[e] == 1 {
                assert_ne!(dry, wet);
            }
        }
    }
    let multiband: u64 =
        ["train", "validation", "test"].iter().map(|s| meta["splits"][s]["multiband"].as_u64().unwrap()).sum();
    assert!(multiband > 0, "half the segments are multiband; 12 examples hold some");
    run(&b.0);
    for entry in std::fs::read_dir(&a.0).unwrap() {
        let name = entry.unwrap().file_name();
        let (x, y) = (std::fs::read(a.0.join(&name)).unwrap(), std::fs::read(b.0.join(&name)).unwrap());
        assert!(x == y, "{name:?} differs between two runs with the same seed");
    }
}

/// The CI evaluation path (accuracy::evaluate_split) on a tiny real dataset with the probe model, whose
/// predictions are known: every setting but makeup sits at the middle of its range, so its accuracy on
/// each is the share of examples whose true value lies within tolerance of that middle.
#[test]
fn evaluate_split_scores_a_known_model() {
    use ballast_models::accuracy::{evaluate_split, judge};
    use ballast_models::estimator::Estimator;

    let dir = TempDir::new("eval");
    run(&dir.0);
    let mut est = Estimator::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/estimator_probe.onnx"))
        .unwrap_or_else(|e| panic!("{e}"));
    let report = evaluate_split(&mut est, &dir.0, "train", 4).unwrap();
    let y = Npy::read(&dir.0.join("train_y.npy")).unwrap().to_f32().unwrap();
    let id = Npy::read(&dir.0.join("train_identifiable.npy")).unwrap().to_u8().unwrap();
    assert_eq!(report.identifiable.count() + report.unidentifiable.count(), 6);
    assert_eq!(report.identifiable.count(), id.iter().filter(|&&v| v == 1).count());
    let mid = CompressorParams::from_array(ranges().map(|r| r.denormalise(0.5)));
    let mut want = [0usize; 4];
    for (e, row) in y.chunks(6).enumerate() {
        if id[e] == 1 {
            let j = judge(mid, CompressorParams::from_array(row.try_into().unwrap()));
            for (k, w) in want.iter_mut().enumerate() {
                *w += usize::from(j[k] == Some(true));
            }
        }
    }
    let n = report.identifiable.count().max(1) as f64;
    for (k, key) in ["threshold_db", "ratio", "attack_ms", "release_ms"].iter().enumerate() {
        if report.identifiable.count() > 0 {
            assert_eq!(report.identifiable.of(key), Some(want[k] as f64 / n), "{key}");
        }
    }
}
