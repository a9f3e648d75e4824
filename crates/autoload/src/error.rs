//! What can go wrong with one resource file, in the four categories the metrics count.

use std::fmt;

use serde::Serialize;

/// The category of a load error; also the `error_type` label of `compozy_autoload_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCategory {
    /// The file cannot be read or decoded as YAML/JSON (syntax, encoding, binary, parser limits).
    Parse,
    /// The document is well-formed but does not match the resource schema or its references.
    Validation,
    /// Two resources share an ID (case-insensitive) or two webhooks share a slug.
    Duplicate,
    /// The file escapes the project root or exceeds the size limit.
    Security,
}

impl ErrorCategory {
    pub const ALL: [ErrorCategory; 4] =
        [ErrorCategory::Parse, ErrorCategory::Validation, ErrorCategory::Duplicate, ErrorCategory::Security];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCategory::Parse => "parse",
            ErrorCategory::Validation => "validation",
            ErrorCategory::Duplicate => "duplicate",
            ErrorCategory::Security => "security",
        }
    }

    /// The `error_type` label value in the metric catalog.
    pub fn metric_label(self) -> &'static str {
        match self {
            ErrorCategory::Parse => "parse_error",
            ErrorCategory::Validation => "validation_error",
            ErrorCategory::Duplicate => "duplicate_error",
            ErrorCategory::Security => "security_error",
        }
    }
}

impl fmt::Display for ErrorCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem with one file. Messages never quote values from the file (they may be secrets),
/// only field names, IDs and slugs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoadError {
    /// Path relative to the project root, `/`-separated.
    pub file: String,
    /// 1-based line, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// 1-based column, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u64>,
    pub category: ErrorCategory,
    pub message: String,
}

impl LoadError {
    pub fn new(file: impl Into<String>, category: ErrorCategory, message: impl Into<String>) -> Self {
        Self { file: file.into(), line: None, column: None, category, message: message.into() }
    }

    pub fn at(mut self, line: u64, column: u64) -> Self {
        if line > 0 {
            self.line = Some(line);
            self.column = (column > 0).then_some(column);
        }
        self
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {} error: {}", self.category, self.message)
    }
}

impl std::error::Error for LoadError {}
