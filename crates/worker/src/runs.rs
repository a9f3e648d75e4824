//! Workflow runs and their tasks as the execution API shows them (read through
//! [`crate::Queue`]).

use serde::Serialize;

/// One run as stored. Times are Unix milliseconds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Run {
    pub id: String,
    pub workflow_id: String,
    pub status: String,
    pub input: serde_json::Value,
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
    #[serde(serialize_with = "compozy_core::timestamp::serialize")]
    pub created_at: i64,
    #[serde(serialize_with = "compozy_core::timestamp::serialize_opt")]
    pub started_at: Option<i64>,
    #[serde(serialize_with = "compozy_core::timestamp::serialize_opt")]
    pub finished_at: Option<i64>,
    /// The run this one retries (`None` once retention deleted it).
    pub retry_of: Option<String>,
    /// The run that retries this one.
    pub retried_by: Option<String>,
}

/// One task row of a run (its latest attempt's outcome).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TaskRow {
    pub id: String,
    pub position: i32,
    pub name: String,
    pub kind: String,
    pub queue: String,
    pub state: String,
    pub attempt: i32,
    pub max_attempts: i32,
    #[serde(serialize_with = "compozy_core::timestamp::serialize")]
    pub available_at: i64,
    pub last_outcome: Option<String>,
    pub last_error: Option<String>,
    pub output: Option<serde_json::Value>,
    #[serde(serialize_with = "compozy_core::timestamp::serialize")]
    pub created_at: i64,
    #[serde(serialize_with = "compozy_core::timestamp::serialize_opt")]
    pub started_at: Option<i64>,
    #[serde(serialize_with = "compozy_core::timestamp::serialize_opt")]
    pub finished_at: Option<i64>,
    /// The worker that holds (running) or held (succeeded) the latest attempt; shown through
    /// the task's attempts, not as a field of its own.
    #[serde(skip)]
    pub worker: Option<String>,
}

/// Filters and keyset cursor of a run listing.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub workflow_id: Option<String>,
    pub status: Option<String>,
    /// `(created_at, id)` of the last run of the previous page.
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

impl RunFilter {
    /// `(created_at, id)` to list before; without a cursor, past every run (on a created_at tie
    /// every id qualifies against a maximal id).
    pub fn cursor(&self) -> (i64, &str) {
        match &self.before {
            Some((at, id)) => (*at, id.as_str()),
            None => (i64::MAX, "\u{10FFFF}"),
        }
    }

    /// `limit` within 1–500.
    pub fn page_size(&self) -> i64 {
        i64::from(self.limit.clamp(1, 500))
    }
}
