//! A configuration value that must never be printed, logged or serialized in clear.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a secret prints as, everywhere.
pub const REDACTED: &str = "[redacted]";

/// A string that is only readable through [`Secret::expose`].
///
/// `Debug`, `Display` and `Serialize` print [`REDACTED`], so `config show`, logs and error
/// messages cannot leak it. A value written `${NAME}` is read from the environment variable
/// `NAME` when the configuration is loaded.
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
        match raw.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            Some(var) => std::env::var(var)
                .map(Secret)
                .map_err(|_| serde::de::Error::custom(format!("environment variable {var} is not set"))),
            None => Ok(Secret(raw)),
        }
    }
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
    fn reads_environment_references() {
        let s: Secret = serde_json::from_str("\"${PATH}\"").expect("PATH is set");
        assert_eq!(s.expose(), std::env::var("PATH").expect("PATH"));
        let err = serde_json::from_str::<Secret>("\"${COMPOZY_SURELY_UNSET_VAR}\"").expect_err("unset");
        assert!(err.to_string().contains("COMPOZY_SURELY_UNSET_VAR"));
    }
}
