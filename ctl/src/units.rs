//! Values as a user types them (`-18dB`, `-18 dB`, `1.5s`, `2.5kHz`, `4:1`, `inf`, `rms`, `on`) turned
//! into the number the daemon takes, in the unit its descriptor names. A unit, when given, must be the
//! parameter's (or a scaled form of it: `s` for an `ms` key, `k`/`kHz` for an `Hz` key); anything else
//! is refused rather than guessed.

/// What the value is for: the descriptor's unit suffix (`dB`, `ms`, `Hz`, `:1`…, empty for plain
/// numbers), its choices (the value is the index) and whether it is a 0/1 switch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Target {
    pub unit: String,
    pub choices: Vec<String>,
    pub boolean: bool,
}

impl Target {
    pub fn unit(unit: &str) -> Target {
        Target { unit: unit.to_string(), ..Target::default() }
    }
}

/// The unit a key names by its suffix (`threshold_db` → `dB`), for when no descriptor is at hand.
pub fn unit_of_key(key: &str) -> &'static str {
    let last = key.rsplit('.').next().unwrap_or(key);
    const SUFFIXES: [(&str, &str); 9] = [
        ("_dbtp", "dBTP"),
        ("_db_per_s", "dB/s"),
        ("_lufs", "LUFS"),
        ("_lu", "LU"),
        ("_db", "dB"),
        ("_ms", "ms"),
        ("_hz", "Hz"),
        ("_pct", "%"),
        ("_s", "s"),
    ];
    if last == "ratio" {
        return ":1";
    }
    SUFFIXES.iter().find(|(s, _)| last.ends_with(s)).map_or("", |(_, u)| u)
}

/// Parses `text` for a parameter `key` described by `target`.
pub fn parse_value(key: &str, text: &str, target: &Target) -> Result<f64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("no value given for {key}"));
    }
    let lower = t.to_ascii_lowercase();
    if target.boolean {
        return match lower.as_str() {
            "on" | "true" | "yes" | "1" => Ok(1.0),
            "off" | "false" | "no" | "0" => Ok(0.0),
            _ => Err(format!("{key} is a switch: give on or off (true/false, 1/0), not \"{t}\"")),
        };
    }
    if !target.choices.is_empty() {
        if let Some(i) = target.choices.iter().position(|c| c.eq_ignore_ascii_case(t)) {
            return Ok(i as f64);
        }
        if let Ok(i) = t.parse::<usize>() {
            if i < target.choices.len() {
                return Ok(i as f64);
            }
        }
        let listed: Vec<String> = target.choices.iter().enumerate().map(|(i, c)| format!("{c} ({i})")).collect();
        return Err(format!("{key} is a choice: one of {}, not \"{t}\"", listed.join(", ")));
    }

    let (number, suffix) = split_number(t).ok_or_else(|| {
        let unit = shown_unit(&target.unit);
        format!("{key} takes a number{unit}, not \"{t}\"")
    })?;
    let suffix = suffix.trim();
    let scale = unit_scale(suffix, &target.unit).ok_or_else(|| {
        if target.unit.is_empty() {
            format!("{key} is a plain number without a unit, but \"{t}\" is in {suffix}")
        } else {
            format!("{key} takes {}, but \"{t}\" is in {suffix}", accepted(&target.unit))
        }
    })?;
    Ok(number * scale)
}

/// ` (dB)` for a message; empty for a plain number.
fn shown_unit(unit: &str) -> String {
    if unit.is_empty() {
        String::new()
    } else {
        format!(" (in {unit})")
    }
}

/// The units a value for `unit` may be written in, for a message.
fn accepted(unit: &str) -> String {
    match unit {
        "ms" => "ms (or s)".into(),
        "s" => "s (or ms)".into(),
        "Hz" => "Hz (or k, kHz)".into(),
        ":1" => "a ratio (4 or 4:1, inf)".into(),
        "dBTP" => "dBTP (or dB)".into(),
        u => u.to_string(),
    }
}

/// The factor that turns a value written in `suffix` into `unit`; `None` when the two do not match.
fn unit_scale(suffix: &str, unit: &str) -> Option<f64> {
    if suffix.is_empty() || suffix.eq_ignore_ascii_case(unit) {
        return Some(1.0);
    }
    let s = suffix.to_ascii_lowercase();
    match (unit, s.as_str()) {
        ("ms", "s") => Some(1000.0),
        ("s", "ms") => Some(0.001),
        ("Hz", "k" | "khz") => Some(1000.0),
        ("dBTP", "db") => Some(1.0),
        (":1", ":1") => Some(1.0),
        ("%", "pct") => Some(1.0),
        _ => None,
    }
}

/// Splits `-18dB` into (-18, "dB"), `inf:1` into (inf, ":1"); `None` when there is no number first.
fn split_number(t: &str) -> Option<(f64, &str)> {
    let lower = t.to_ascii_lowercase();
    for (word, v) in [
        ("-infinity", f64::NEG_INFINITY),
        ("+infinity", f64::INFINITY),
        ("infinity", f64::INFINITY),
        ("-inf", f64::NEG_INFINITY),
        ("+inf", f64::INFINITY),
        ("inf", f64::INFINITY),
    ] {
        if lower.starts_with(word) {
            return Some((v, &t[word.len()..]));
        }
    }
    // The longest prefix that parses as a number (sign, digits, point, exponent).
    let bytes = t.as_bytes();
    let mut end = 0;
    let mut i = 0;
    if i < bytes.len() && (bytes[i] == b'-' || bytes[i] == b'+') {
        i += 1;
    }
    let digits_start = i;
    while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
        i += 1;
    }
    if i > digits_start {
        end = i;
        // An exponent only when digits follow it (so a unit starting with `e` would still work).
        if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
            let mut j = i + 1;
            if j < bytes.len() && (bytes[j] == b'-' || bytes[j] == b'+') {
                j += 1;
            }
            let exp_start = j;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            if j > exp_start {
                end = j;
            }
        }
    }
    if end == 0 {
        return None;
    }
    let v: f64 = t[..end].parse().ok()?;
    Some((v, &t[end..]))
}

/// A value for display: `-18 dB`, `4:1`, `rms`, `on`, `inf:1`.
pub fn format_value(value: f64, target: &Target) -> String {
    if target.boolean {
        return if value >= 0.5 { "on".into() } else { "off".into() };
    }
    if !target.choices.is_empty() {
        let i = value.round();
        if i >= 0.0 && (i as usize) < target.choices.len() {
            return target.choices[i as usize].clone();
        }
    }
    let n = format_number(value);
    match target.unit.as_str() {
        "" => n,
        ":1" => format!("{n}:1"),
        "%" => format!("{n}%"),
        u => format!("{n} {u}"),
    }
}

/// A number without float noise: `-18`, `1.5`, `0.333`, `inf`, `nan`.
pub fn format_number(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // f32 precision is what the daemon keeps; 6 significant digits show it without noise.
    let s = format!("{:.*}", decimals(v), v);
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

fn decimals(v: f64) -> usize {
    let mag = v.abs();
    if mag == 0.0 {
        return 0;
    }
    let int_digits = mag.log10().floor() as i32 + 1;
    (6 - int_digits).clamp(0, 9) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(unit: &str) -> Target {
        Target::unit(unit)
    }

    #[test]
    fn unit_table() {
        let ok: &[(&str, &str, &str, f64)] = &[
            ("threshold_db", "-18dB", "dB", -18.0),
            ("threshold_db", "-18 dB", "dB", -18.0),
            ("threshold_db", "-18db", "dB", -18.0),
            ("threshold_db", "-18", "dB", -18.0),
            ("threshold_db", "+3.5", "dB", 3.5),
            ("attack_ms", "10ms", "ms", 10.0),
            ("attack_ms", "10", "ms", 10.0),
            ("release_ms", "1.5s", "ms", 1500.0),
            ("release_ms", "1.5 s", "ms", 1500.0),
            ("window_s", "400ms", "s", 0.4),
            ("sidechain_hpf_hz", "2.5k", "Hz", 2500.0),
            ("sidechain_hpf_hz", "2.5kHz", "Hz", 2500.0),
            ("sidechain_hpf_hz", "2.5 khz", "Hz", 2500.0),
            ("sidechain_hpf_hz", "90Hz", "Hz", 90.0),
            ("ratio", "4:1", ":1", 4.0),
            ("ratio", "4", ":1", 4.0),
            ("ratio", "inf", ":1", f64::INFINITY),
            ("ratio", "inf:1", ":1", f64::INFINITY),
            ("ceiling_dbtp", "-1dBTP", "dBTP", -1.0),
            ("ceiling_dbtp", "-1 dB", "dBTP", -1.0),
            ("target_lufs", "-23LUFS", "LUFS", -23.0),
            ("stereo_link_pct", "50%", "%", 50.0),
            ("gain", "1e-3", "", 0.001),
            ("threshold_db", "-inf", "dB", f64::NEG_INFINITY),
        ];
        for &(key, text, unit, want) in ok {
            let got = parse_value(key, text, &t(unit)).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(got == want || (got - want).abs() < 1e-9, "{text} for {key} ({unit}): {got}, want {want}");
        }
        let bad: &[(&str, &str, &str, &str)] = &[
            ("threshold_db", "10ms", "dB", "takes dB, but \"10ms\" is in ms"),
            ("attack_ms", "-18dB", "ms", "takes ms (or s), but"),
            ("sidechain_hpf_hz", "2.5s", "Hz", "takes Hz (or k, kHz)"),
            ("ratio", "4dB", ":1", "a ratio"),
            ("gain", "3dB", "", "plain number without a unit"),
            ("threshold_db", "loud", "dB", "takes a number (in dB), not \"loud\""),
            ("threshold_db", "", "dB", "no value"),
        ];
        for &(key, text, unit, want) in bad {
            let e = parse_value(key, text, &t(unit)).expect_err(text);
            assert!(e.contains(want), "{text}: {e:?} should say {want:?}");
        }
    }

    #[test]
    fn choices_and_switches() {
        let choice = Target { choices: vec!["peak".into(), "rms".into()], ..Target::default() };
        assert_eq!(parse_value("detector", "rms", &choice), Ok(1.0));
        assert_eq!(parse_value("detector", "RMS", &choice), Ok(1.0));
        assert_eq!(parse_value("detector", "0", &choice), Ok(0.0));
        assert!(parse_value("detector", "2", &choice).unwrap_err().contains("peak (0), rms (1)"));
        let switch = Target { boolean: true, ..Target::default() };
        for (text, v) in [("on", 1.0), ("off", 0.0), ("true", 1.0), ("0", 0.0)] {
            assert_eq!(parse_value("enabled", text, &switch), Ok(v));
        }
        assert!(parse_value("enabled", "maybe", &switch).is_err());
        assert_eq!(format_value(1.0, &choice), "rms");
        assert_eq!(format_value(1.0, &switch), "on");
    }

    #[test]
    fn keys_name_their_units() {
        for (key, unit) in [
            ("threshold_db", "dB"),
            ("band2.threshold_db", "dB"),
            ("attack_ms", "ms"),
            ("crossover_1_hz", "Hz"),
            ("ceiling_dbtp", "dBTP"),
            ("target_lufs", "LUFS"),
            ("ratio", ":1"),
            ("band3.ratio", ":1"),
            ("makeup", ""),
        ] {
            assert_eq!(unit_of_key(key), unit, "{key}");
        }
    }

    #[test]
    fn numbers_show_without_noise() {
        for (v, s) in [
            (-18.0, "-18"),
            (1.5, "1.5"),
            (-31.5f32 as f64, "-31.5"),
            (0.1f32 as f64, "0.1"),
            (f64::INFINITY, "inf"),
            (2500.0, "2500"),
            (-0.0, "0"),
        ] {
            assert_eq!(format_number(v), s);
        }
        assert_eq!(format_value(4.0, &t(":1")), "4:1");
        assert_eq!(format_value(-18.0, &t("dB")), "-18 dB");
    }
}
