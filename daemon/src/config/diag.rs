//! Diagnostics: every problem found in a config file, with the `FILE:LINE:COL` of the key or value at
//! fault, printed one per line in the shape compilers use so editors can jump to them.

use std::fmt;
use std::ops::Range;

/// How bad a diagnostic is: errors refuse the config, warnings only inform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem, located in the file (1-based line and column, columns counted in characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub severity: Severity,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.line == 0 {
            // Not about a place in the file (it could not be read at all).
            write!(f, "{}: {level}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}:{}: {level}: {}", self.file, self.line, self.col, self.message)
        }
    }
}

/// Why a config was refused: all its errors (never just the first), in file order, plus the warnings
/// found on the way. `Display` prints one diagnostic per line, errors and warnings interleaved by position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Errors {
    /// Every diagnostic, sorted by position; at least one is an error.
    pub diagnostics: Vec<Diagnostic>,
}

impl Errors {
    /// The errors only (warnings left out).
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error)
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

/// Collects diagnostics against one source text, turning byte spans into line and column.
pub(crate) struct Sink<'a> {
    file: &'a str,
    text: &'a str,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(file: &'a str, text: &'a str) -> Self {
        Sink { file, text, diagnostics: Vec::new() }
    }

    /// 1-based (line, column) of byte offset `at` (clamped to the text; columns in characters).
    pub(crate) fn position(&self, at: usize) -> (usize, usize) {
        let mut at = at.min(self.text.len());
        while !self.text.is_char_boundary(at) {
            at -= 1;
        }
        let before = &self.text[..at];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    fn push(&mut self, severity: Severity, span: Option<Range<usize>>, message: String) {
        let (line, col) = self.position(span.map_or(0, |s| s.start));
        self.diagnostics.push(Diagnostic { file: self.file.to_string(), line, col, severity, message });
    }

    pub(crate) fn error(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        self.push(Severity::Error, span, message.into());
    }

    pub(crate) fn warning(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        self.push(Severity::Warning, span, message.into());
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }

    /// The source text of `span`, trimmed (for quoting a value as the user wrote it).
    pub(crate) fn slice(&self, span: Option<Range<usize>>) -> &'a str {
        span.and_then(|s| self.text.get(s)).map_or("", str::trim)
    }

    /// Sorted by position (stable, so diagnostics at one spot keep the order they were found in), each
    /// reported once (a chain element is both a sink and a source, and may be found bad as both). When
    /// there are errors the warnings are left out: they would mostly echo the errors (a link that was
    /// refused leaves its nodes looking unconnected).
    pub(crate) fn finish(mut self) -> Vec<Diagnostic> {
        if self.has_errors() {
            self.diagnostics.retain(|d| d.severity == Severity::Error);
        }
        self.diagnostics.sort_by_key(|d| (d.line, d.col));
        self.diagnostics.dedup();
        self.diagnostics
    }
}

/// "did you mean `x`?": a candidate that is `word` plus its unit (`knee` -> `knee_db`), else the one
/// closest by edit distance when close enough to be a plausible typo (at most a third of the word's
/// length, and at least 1, edits away).
pub(crate) fn did_you_mean<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let candidates: Vec<&'c str> = candidates.into_iter().collect();
    let with_unit = candidates.iter().find(|c| c.strip_prefix(word).is_some_and(|rest| rest.starts_with('_')));
    if let Some(c) = with_unit {
        return Some(c);
    }
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `" (did you mean `x`?)"` or nothing.
pub(crate) fn suggestion<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> String {
    did_you_mean(word, candidates).map_or(String::new(), |c| format!("; did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_in_characters() {
        let s = Sink::new("f", "ab\nçd = 1\n");
        assert_eq!(s.position(0), (1, 1));
        assert_eq!(s.position(3), (2, 1));
        assert_eq!(s.position(5), (2, 2)); // 'ç' is two bytes, one column
        assert_eq!(s.position(100), (3, 1));
    }

    #[test]
    fn suggestions_need_to_be_close() {
        assert_eq!(did_you_mean("treshold_db", ["threshold_db", "ratio"]), Some("threshold_db"));
        assert_eq!(did_you_mean("ratoi", ["threshold_db", "ratio"]), Some("ratio"));
        assert_eq!(did_you_mean("volume", ["threshold_db", "ratio"]), None);
        assert_eq!(did_you_mean("knee", ["knee_db", "ratio"]), Some("knee_db"));
    }
}
