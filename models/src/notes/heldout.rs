//! The held-out test chorales as `models/train/notes/evaluate.py` writes them
//! (`models/tests/data/notes_heldout.txt`): one per line, `name offset_steps bar_steps token token …`.

use std::path::{Path, PathBuf};

use super::tokens::TokenPiece;

/// The committed file.
pub fn default_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/notes_heldout.txt")
}

/// Parses the file's text; errors name the line.
pub fn parse(text: &str) -> Result<Vec<(String, TokenPiece)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |what: String| format!("line {}: {what}", i + 1);
        let mut f = line.split_ascii_whitespace();
        let name = f.next().ok_or_else(|| bad("empty".into()))?.to_string();
        let mut num = |what: &str| -> Result<usize, String> {
            f.next().and_then(|x| x.parse().ok()).ok_or_else(|| bad(format!("{what} missing or not a number")))
        };
        let offset = num("offset_steps")?;
        let bar = num("bar_steps")?;
        let tokens: Vec<u32> =
            f.map(|x| x.parse().map_err(|_| bad(format!("token `{x}` is not a number")))).collect::<Result<_, _>>()?;
        out.push((name, TokenPiece::from_stream(&tokens, offset, bar).map_err(bad)?));
    }
    Ok(out)
}

/// Reads and parses `path`.
pub fn read(path: &Path) -> Result<Vec<(String, TokenPiece)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}
