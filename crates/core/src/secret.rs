//! A configuration value that must never be printed, logged or serialized in clear.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a secret prints as, everywhere.
pub const REDACTED: &str = "[redacted]";

/// A string that is only readable through [`Secret::expose`].
///
/// `Debug`, `Display` and `Serialize` print [`REDACTED`], so `config show`, logs and error
/// messages cannot leak it. Each `${NAME}` in the value is replaced by the environment
/// variable `NAME` when the configuration is loaded (`Bearer ${TOKEN}` works); `$${` stands
/// for a literal `${`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        interpolate(&raw, |name| std::env::var(name).ok()).map(Secret).map_err(serde::de::Error::custom)
    }
}

/// Replaces every `${NAME}` with `lookup(NAME)`; `$${` is a literal `${`. The error names the
/// variable, never the value.
pub fn interpolate(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after.find('}').ok_or_else(|| "unterminated ${ in a secret value".to_string())?;
            let name = &after[..end];
            let value = lookup(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
        assert_eq!(serde_json::to_string(&s).expect("json"), "\"[redacted]\"");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn interpolates_anywhere_and_escapes() {
        let env = |n: &str| (n == "TOKEN").then(|| "abc".to_string());
        assert_eq!(interpolate("Bearer ${TOKEN}", env).as_deref(), Ok("Bearer abc"));
        assert_eq!(interpolate("$${TOKEN} costs $5", env).as_deref(), Ok("${TOKEN} costs $5"));
        assert_eq!(interpolate("${TOKEN}${TOKEN}", env).as_deref(), Ok("abcabc"));
        assert_eq!(interpolate("${MISSING}", env), Err("environment variable MISSING is not set".into()));
        assert!(interpolate("${TOKEN", env).is_err());
    }

    #[test]
    fn reads_environment_references() {
        let s: Secret = serde_json::from_str("\"${PATH}\"").expect("PATH is set");
        assert_eq!(s.expose(), std::env::var("PATH").expect("PATH"));
        let err = serde_json::from_str::<Secret>("\"${COMPOZY_SURELY_UNSET_VAR}\"").expect_err("unset");
        assert!(err.to_string().contains("COMPOZY_SURELY_UNSET_VAR"));
    }
}
