//! Per-attempt history of a run's tasks, as the execution API shows it: the attempts that did
//! not succeed from `task_attempts`, plus the latest attempt when it is running or succeeded
//! (which only its task row records).

use std::collections::HashMap;

use serde::Serialize;
use sqlx::Row;

use crate::error::WorkerError;
use crate::queue::{Queue, on_conn, sql};
use crate::runs::TaskRow;

/// One activity attempt. Times are Unix milliseconds (RFC 3339 in JSON); `outcome` is `success`, `error`, `timeout`,
/// or `None` while it runs.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Attempt {
    pub attempt: i32,
    pub worker: Option<String>,
    #[serde(serialize_with = "compozy_core::timestamp::serialize_opt")]
    pub started_at: Option<i64>,
    #[serde(serialize_with = "compozy_core::timestamp::serialize_opt")]
    pub finished_at: Option<i64>,
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub output: Option<serde_json::Value>,
}

/// A task row with its attempts, oldest first.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TaskHistory {
    #[serde(flatten)]
    pub task: TaskRow,
    pub attempts: Vec<Attempt>,
}

fn decode<R: Row>(r: &R) -> Result<(String, Attempt), sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    i32: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
    i64: for<'x> sqlx::Decode<'x, R::Database> + sqlx::Type<R::Database>,
{
    let output: Option<String> = r.try_get("output")?;
    let attempt = Attempt {
        attempt: r.try_get("attempt")?,
        worker: r.try_get("worker")?,
        started_at: Some(r.try_get("started_at")?),
        finished_at: Some(r.try_get("finished_at")?),
        outcome: Some(r.try_get("outcome")?),
        error: r.try_get("error")?,
        output: output.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t))),
    };
    Ok((r.try_get("task_id")?, attempt))
}

impl Queue {
    /// The ended attempts of run `id`'s tasks as `(task id, attempt)`, by position then attempt.
    pub async fn run_attempts(&self, id: &str) -> Result<Vec<(String, Attempt)>, WorkerError> {
        let mut conn = self.store().acquire().await?;
        let attempts = on_conn!(&mut conn, c => {
            let rows = sqlx::query(sql::RUN_ATTEMPTS).bind(id).fetch_all(&mut **c).await?;
            rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?
        });
        Ok(attempts)
    }

    /// Run `id`'s tasks, each with every attempt, oldest first.
    pub async fn run_history(&self, id: &str) -> Result<Vec<TaskHistory>, WorkerError> {
        let tasks = self.run_tasks(id).await?;
        let mut ended: HashMap<String, Vec<Attempt>> = HashMap::new();
        for (task_id, attempt) in self.run_attempts(id).await? {
            ended.entry(task_id).or_default().push(attempt);
        }
        let history = tasks
            .into_iter()
            .map(|task| {
                let mut attempts = ended.remove(&task.id).unwrap_or_default();
                // Databases written before successes lived on the task row have a row for it.
                let recorded = attempts.last().is_some_and(|a| a.attempt == task.attempt);
                if matches!(task.state.as_str(), "running" | "succeeded") && !recorded {
                    attempts.push(latest(&task));
                }
                TaskHistory { task, attempts }
            })
            .collect();
        Ok(history)
    }
}

/// The attempt the task row itself records: running, or the one that succeeded.
fn latest(task: &TaskRow) -> Attempt {
    let succeeded = task.state == "succeeded";
    Attempt {
        attempt: task.attempt,
        worker: task.worker.clone(),
        started_at: task.started_at,
        finished_at: task.finished_at.filter(|_| succeeded),
        outcome: succeeded.then(|| "success".to_string()),
        error: None,
        output: task.output.clone().filter(|_| succeeded),
    }
}
