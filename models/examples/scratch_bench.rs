use ballast_dsp::crossover::Crossover;
use ballast_dsp::registry::{self, Shape};
use std::time::Instant;
fn main() {
    let n = 240_000;
    let x: Vec<f32> = (0..n).map(|i| ((i as f32 * 0.01).sin() * 0.3)).collect();
    let mut out = vec![vec![0.0f32; n]; 2];
    let mut node = registry::create("compressor", Shape { channels: 2, bands: 1 }).unwrap();
    node.prepare(48000.0, 4096);
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..20 {
            node.reset();
            let mut pos = 0;
            while pos < n {
                let l = (n - pos).min(4096);
                let [a, b] = &mut out[..] else { panic!() };
                node.process(&[&x[pos..pos + l], &x[pos..pos + l]], &mut [&mut a[pos..pos + l], &mut b[pos..pos + l]]);
                pos += l;
            }
        }
        println!("compressor 5 s stereo: {:.2} ms", t.elapsed().as_secs_f64() * 1e3 / 20.0);
    }
    for bands in [2, 4] {
        let mut xo = Crossover::new(2, bands);
        xo.set_frequencies(&[200.0, 2000.0, 8000.0][..bands - 1]);
        xo.prepare(48000.0, 4096);
        let mut outs = vec![vec![0.0f32; n]; 2 * bands];
        let t = Instant::now();
        for _ in 0..20 {
            xo.reset();
            let mut pos = 0;
            while pos < n {
                let l = (n - pos).min(4096);
                let mut o: Vec<&mut [f32]> = outs.iter_mut().map(|c| &mut c[pos..pos + l]).collect();
                xo.process(&[&x[pos..pos + l], &x[pos..pos + l]], &mut o);
                pos += l;
            }
        }
        println!("crossover {bands} bands 5 s stereo: {:.2} ms", t.elapsed().as_secs_f64() * 1e3 / 20.0);
    }
    let t = Instant::now();
    let mut s = 0.0;
    for _ in 0..20 {
        for f in 0..5000 {
            let mut a = 0.0f64;
            for c in 0..2 { for &v in &out[c][f * 48..(f + 1) * 48] { a += f64::from(v) * f64::from(v); } }
            s += (a + 1e-20).log10();
        }
    }
    println!("frame levels: {:.2} ms {s}", t.elapsed().as_secs_f64() * 1e3 / 20.0);
}
