//! Port-name patterns: `*` (any run of characters, none included) and `?` (one character); every
//! other character matches itself. Whole-name matches only.

pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative match with one backtrack point (the last `*`): linear in practice, no recursion.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == n[ni])) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        assert!(matches("system:playback_*", "system:playback_1"));
        assert!(matches("system:playback_*", "system:playback_"));
        assert!(!matches("system:playback_*", "system:capture_1"));
        assert!(matches("system:playback_?", "system:playback_2"));
        assert!(!matches("system:playback_?", "system:playback_12"));
        assert!(matches("*", ""));
        assert!(matches("*:*out*", "mpv:out_FL"));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(!matches("a*b*c", "aXbYbZ"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
        assert!(matches("**x", "x"));
        assert!(matches("é?", "éa"));
    }
}
