//! RFC 9457 problem details: the one shape of every error response, whichever component
//! answers, and the one table of problem types ([`ProblemType`]) they are drawn from.
//! docs/api.md lists the table; a test keeps the two equal.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// The prefix of every problem `type` URI.
pub const TYPE_PREFIX: &str = "urn:compozy:problem:";

macro_rules! problem_types {
    ($($variant:ident => $slug:literal, $status:ident, $title:literal, $retry:literal;)*) => {
        /// One situation a client can meet, with its status, title and whether the answer
        /// carries `Retry-After`. Every error response of the API is one of these (or
        /// `about:blank` for a status the framework answers with no more to say).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ProblemType { $($variant),* }

        impl ProblemType {
            pub const ALL: &'static [ProblemType] = &[$(ProblemType::$variant),*];

            pub fn slug(self) -> &'static str {
                match self { $(ProblemType::$variant => $slug),* }
            }

            pub fn status(self) -> StatusCode {
                match self { $(ProblemType::$variant => StatusCode::$status),* }
            }

            pub fn title(self) -> &'static str {
                match self { $(ProblemType::$variant => $title),* }
            }

            /// Whether answers of this type carry `Retry-After` (the client may retry as is).
            pub fn retries(self) -> bool {
                match self { $(ProblemType::$variant => $retry),* }
            }
        }
    };
}

problem_types! {
    InvalidRequest => "invalid-request", BAD_REQUEST, "Invalid request", false;
    Unauthorized => "unauthorized", UNAUTHORIZED, "Unauthorized", false;
    VerificationFailed => "verification-failed", UNAUTHORIZED, "Signature verification failed", false;
    Forbidden => "forbidden", FORBIDDEN, "Forbidden", false;
    NotFound => "not-found", NOT_FOUND, "Not found", false;
    MethodNotAllowed => "method-not-allowed", METHOD_NOT_ALLOWED, "Method not allowed", false;
    BodyTimeout => "body-timeout", REQUEST_TIMEOUT, "Request body timeout", false;
    Conflict => "conflict", CONFLICT, "Already exists", false;
    TooManyKeys => "too-many-keys", CONFLICT, "Too many API keys", false;
    ExecutionFinished => "execution-finished", CONFLICT, "Execution already ended", false;
    ExecutionNotRetryable => "execution-not-retryable", CONFLICT, "Execution cannot be retried", false;
    ExecutionAlreadyRetried => "execution-already-retried", CONFLICT, "Execution already retried", false;
    DeliveryInProgress => "delivery-in-progress", CONFLICT, "Delivery in progress", true;
    PayloadNotKept => "payload-not-kept", CONFLICT, "Payload not kept", false;
    PayloadTooLarge => "payload-too-large", PAYLOAD_TOO_LARGE, "Payload too large", false;
    UnsupportedMediaType => "unsupported-media-type", UNSUPPORTED_MEDIA_TYPE, "Unsupported media type", false;
    InvalidInput => "invalid-input", UNPROCESSABLE_ENTITY, "Invalid input", false;
    ReloadRejected => "reload-rejected", UNPROCESSABLE_ENTITY, "Reload rejected", false;
    RateLimited => "rate-limited", TOO_MANY_REQUESTS, "Too many requests", true;
    Internal => "internal", INTERNAL_SERVER_ERROR, "Internal error", false;
    Unavailable => "unavailable", SERVICE_UNAVAILABLE, "Temporarily unavailable", true;
    Overloaded => "overloaded", SERVICE_UNAVAILABLE, "Overloaded", true;
    Timeout => "timeout", SERVICE_UNAVAILABLE, "Request timeout", true;
}

impl ProblemType {
    /// The `type` member: `urn:compozy:problem:<slug>`.
    pub fn uri(self) -> String {
        format!("{TYPE_PREFIX}{}", self.slug())
    }

    /// A problem of this type with a detail written for the client.
    pub fn with(self, detail: impl Into<String>) -> Problem {
        Problem::of(self, Some(detail.into()))
    }
}

/// An error answer. `detail` is written for the client and never carries internal error
/// text; `extensions` are extra members (the errors of a rejected reload).
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn of(kind: ProblemType, detail: Option<String>) -> Self {
        Self {
            kind: kind.uri(),
            title: kind.title().to_string(),
            status: kind.status().as_u16(),
            detail,
            extensions: serde_json::Map::new(),
            // The default of a retryable type; callers that know better say so.
            retry_after: kind.retries().then_some(1),
        }
    }

    /// A problem for a bare status: its table type when the status has exactly one meaning
    /// in the framework's answers, `about:blank` (RFC 9457 §4.2.1) otherwise.
    pub fn from_status(status: StatusCode) -> Self {
        let known = match status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => Some(ProblemType::InvalidRequest),
            StatusCode::NOT_FOUND => Some(ProblemType::NotFound),
            StatusCode::METHOD_NOT_ALLOWED => Some(ProblemType::MethodNotAllowed),
            StatusCode::PAYLOAD_TOO_LARGE => Some(ProblemType::PayloadTooLarge),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Some(ProblemType::UnsupportedMediaType),
            StatusCode::INTERNAL_SERVER_ERROR => Some(ProblemType::Internal),
            _ => None,
        };
        match known {
            Some(kind) => Self::of(kind, None),
            None => Self {
                kind: "about:blank".to_string(),
                title: status.canonical_reason().unwrap_or("Error").to_string(),
                status: status.as_u16(),
                detail: None,
                extensions: serde_json::Map::new(),
                retry_after: None,
            },
        }
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    pub fn with_extension(mut self, name: &str, value: serde_json::Value) -> Self {
        self.extensions.insert(name.to_string(), value);
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A problem with a literal detail, as a response: the short form components use.
pub fn problem(kind: ProblemType, detail: &str) -> Response {
    kind.with(detail).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_unique() {
        let mut slugs: Vec<_> = ProblemType::ALL.iter().map(|t| t.slug()).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), ProblemType::ALL.len());
    }

    #[test]
    fn retryable_types_answer_retry_after() {
        for kind in ProblemType::ALL {
            let response = kind.with("x").into_response();
            assert_eq!(response.status(), kind.status());
            assert_eq!(response.headers().contains_key(header::RETRY_AFTER), kind.retries(), "{kind:?}");
        }
    }

    /// docs/api.md's table lists every type with its status and retry mark, and nothing else.
    #[test]
    fn docs_list_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let documented: Vec<(String, String, bool)> = text
            .lines()
            .filter_map(|l| {
                let cols: Vec<&str> = l.split('|').map(str::trim).collect();
                let slug = cols.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((slug.to_string(), cols.get(2)?.to_string(), *cols.get(3)? == "retry"))
            })
            .collect();
        let table: Vec<(String, String, bool)> = ProblemType::ALL
            .iter()
            .map(|t| (t.slug().to_string(), t.status().as_u16().to_string(), t.retries()))
            .collect();
        assert_eq!(documented, table);
    }

    #[test]
    fn extensions_are_top_level_members() {
        let p = ProblemType::ReloadRejected.with("bad").with_extension("errors", serde_json::json!([1]));
        let v = serde_json::to_value(&p).unwrap_or_default();
        assert_eq!(v["type"], "urn:compozy:problem:reload-rejected");
        assert_eq!(v["errors"], serde_json::json!([1]));
    }
}
