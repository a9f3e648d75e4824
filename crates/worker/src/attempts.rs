//! Per-attempt history of a run's tasks, as the execution API shows it: the attempts that did
//! not succeed from `task_attempts`, plus the latest attempt when it is running or succeeded
//! (which only its task row records).

use std::collections::HashMap;

use serde::Serialize;

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

/// Each task with its attempts: the ended ones (`ended`, as `(task id, attempt)`) and the
/// latest one when it is running or succeeded, which only its task row records.
pub fn history(tasks: Vec<TaskRow>, ended: Vec<(String, Attempt)>) -> Vec<TaskHistory> {
    let mut by_task: HashMap<String, Vec<Attempt>> = HashMap::new();
    for (task_id, attempt) in ended {
        by_task.entry(task_id).or_default().push(attempt);
    }
    tasks
        .into_iter()
        .map(|task| {
            let mut attempts = by_task.remove(&task.id).unwrap_or_default();
            // Databases written before successes lived on the task row have a row for it.
            let recorded = attempts.last().is_some_and(|a| a.attempt == task.attempt);
            if matches!(task.state.as_str(), "running" | "succeeded") && !recorded {
                attempts.push(latest(&task));
            }
            TaskHistory { task, attempts }
        })
        .collect()
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
