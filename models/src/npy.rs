//! NumPy `.npy` files (format version 1.0; numpy's `lib/format.py` documents it): little-endian `f32`,
//! `u8` and `i32` arrays, C order. Written streaming (the shape is fixed up front and checked at the end)
//! so a dataset never has to fit in memory; read back whole for tests and evaluation.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

/// Element types ballast writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    U8,
    I32,
}

impl Dtype {
    fn descr(self) -> &'static str {
        match self {
            Dtype::F32 => "<f4",
            Dtype::U8 => "|u1",
            Dtype::I32 => "<i4",
        }
    }

    fn size(self) -> usize {
        match self {
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::U8 => 1,
        }
    }
}

fn header(dtype: Dtype, shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut dict = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {dims}, }}", dtype.descr());
    // Magic (6) + version (2) + length (2) + dict + '\n' is padded to a multiple of 64 bytes.
    let total = (10 + dict.len() + 1).div_ceil(64) * 64;
    dict.push_str(&" ".repeat(total - 10 - dict.len() - 1));
    dict.push('\n');
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h
}

/// Writes one array, element by element, to a file.
pub struct NpyWriter {
    out: BufWriter<File>,
    dtype: Dtype,
    expected: usize,
    written: usize,
}

impl NpyWriter {
    pub fn create(path: &Path, dtype: Dtype, shape: &[usize]) -> io::Result<Self> {
        let mut out = BufWriter::new(File::create(path)?);
        out.write_all(&header(dtype, shape))?;
        Ok(Self { out, dtype, expected: shape.iter().product(), written: 0 })
    }

    pub fn write_f32(&mut self, values: &[f32]) -> io::Result<()> {
        assert_eq!(self.dtype, Dtype::F32, "array is {:?}", self.dtype);
        for v in values {
            self.out.write_all(&v.to_le_bytes())?;
        }
        self.written += values.len();
        Ok(())
    }

    pub fn write_u8(&mut self, values: &[u8]) -> io::Result<()> {
        assert_eq!(self.dtype, Dtype::U8, "array is {:?}", self.dtype);
        self.out.write_all(values)?;
        self.written += values.len();
        Ok(())
    }

    pub fn write_i32(&mut self, values: &[i32]) -> io::Result<()> {
        assert_eq!(self.dtype, Dtype::I32, "array is {:?}", self.dtype);
        for v in values {
            self.out.write_all(&v.to_le_bytes())?;
        }
        self.written += values.len();
        Ok(())
    }

    /// Flushes and checks that exactly the declared number of elements was written.
    pub fn finish(mut self) -> io::Result<()> {
        self.out.flush()?;
        if self.written != self.expected {
            return Err(io::Error::other(format!(
                "npy: {} elements written, the header declares {}",
                self.written, self.expected
            )));
        }
        self.out.get_ref().sync_all()
    }
}

/// An array read back: shape and raw little-endian elements.
#[derive(Clone, Debug, PartialEq)]
pub struct Npy {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    data: Vec<u8>,
}

impl Npy {
    pub fn read(path: &Path) -> io::Result<Npy> {
        let mut bytes = Vec::new();
        File::open(path)?.read_to_end(&mut bytes)?;
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what}", path.display()));
        if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" || bytes[6] != 1 {
            return Err(bad("not a version 1 .npy file"));
        }
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        let dict = std::str::from_utf8(bytes.get(10..10 + hlen).ok_or_else(|| bad("short header"))?)
            .map_err(|_| bad("header is not UTF-8"))?;
        let dtype = [Dtype::F32, Dtype::U8, Dtype::I32]
            .into_iter()
            .find(|d| dict.contains(&format!("'descr': '{}'", d.descr())))
            .ok_or_else(|| bad("unsupported dtype"))?;
        if !dict.contains("'fortran_order': False") {
            return Err(bad("Fortran order"));
        }
        let open = dict.find("'shape': (").ok_or_else(|| bad("no shape"))? + "'shape': (".len();
        let close = open + dict[open..].find(')').ok_or_else(|| bad("bad shape"))?;
        let shape: Vec<usize> = dict[open..close]
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| bad("bad shape")))
            .collect::<Result<_, _>>()?;
        let data = bytes.split_off(10 + hlen);
        if data.len() != shape.iter().product::<usize>() * dtype.size() {
            return Err(bad("data length does not match the shape"));
        }
        Ok(Npy { dtype, shape, data })
    }

    pub fn to_f32(&self) -> Option<Vec<f32>> {
        (self.dtype == Dtype::F32)
            .then(|| self.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    pub fn to_i32(&self) -> Option<Vec<i32>> {
        (self.dtype == Dtype::I32)
            .then(|| self.data.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    pub fn to_u8(&self) -> Option<Vec<u8>> {
        (self.dtype == Dtype::U8).then(|| self.data.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_round_trips() {
        for shape in [&[3usize][..], &[2, 2, 400, 4][..], &[0, 6][..]] {
            let h = header(Dtype::F32, shape);
            assert_eq!(h.len() % 64, 0);
            assert_eq!(*h.last().unwrap(), b'\n');
        }
        let dir = std::env::temp_dir().join(format!("ballast-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.npy");
        let mut w = NpyWriter::create(&p, Dtype::F32, &[2, 3]).unwrap();
        w.write_f32(&[1.0, 2.0, 3.0]).unwrap();
        w.write_f32(&[-4.5, 0.0, f32::MAX]).unwrap();
        w.finish().unwrap();
        let r = Npy::read(&p).unwrap();
        assert_eq!(r.shape, vec![2, 3]);
        assert_eq!(r.to_f32().unwrap(), vec![1.0, 2.0, 3.0, -4.5, 0.0, f32::MAX]);
        let q = dir.join("b.npy");
        let mut w = NpyWriter::create(&q, Dtype::U8, &[4]).unwrap();
        w.write_u8(&[1, 0, 1]).unwrap();
        assert!(w.finish().is_err(), "a short array must not pass");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
