//! `//@ key: value` settings of a sample source. Shared verbatim with build.rs
//! (through `#[path]`), so it depends on nothing but std.

/// One `//@ key: value` line of a sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub value: String,
    /// 1-based line number.
    pub line: u32,
}

/// The settings of one source text, in order. A line whose trimmed text
/// starts with `//@` must have the form `//@ key: value`.
pub fn parse_settings(text: &str) -> Result<Vec<Setting>, (u32, String)> {
    let mut out = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = idx as u32 + 1;
        let Some(rest) = raw.trim_start().strip_prefix("//@") else {
            continue;
        };
        let Some((key, value)) = rest.split_once(':') else {
            return Err((line, "expected `//@ key: value`".to_string()));
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
            return Err((line, format!("setting key `{key}` must be lowercase letters and dashes")));
        }
        out.push(Setting { key: key.to_string(), value: value.trim().to_string(), line });
    }
    Ok(out)
}

/// Keys a sample may set; anything else is a typo.
pub const KNOWN_SETTINGS: &[&str] = &["title", "teaches", "args", "cflags", "ldflags", "std", "backends", "timeout"];
