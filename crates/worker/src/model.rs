//! The queue's vocabularies as types: run status, task state, task kind, attempt outcome and
//! store backend. Each is stored as its `as_str()` text, which a CHECK constraint of the schema
//! (migration 20261130000210) restricts to exactly these values; see [`crate::driver`] for
//! the state machine they move through.

use std::fmt;

/// Declares a string-backed enum with `ALL`, `as_str()`, `parse()` and `Display`.
macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// `None` for text outside the vocabulary (the schema's CHECK keeps it out).
            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary!(
    /// `workflow_runs.status`.
    RunStatus { Pending = "pending", Running = "running", Succeeded = "succeeded", Failed = "failed", Cancelled = "cancelled" }
);

vocabulary!(
    /// `tasks.state`.
    TaskState {
        Available = "available",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Dead = "dead",
        Cancelled = "cancelled",
    }
);

vocabulary!(
    /// `tasks.kind`: the activity a task runs (the `activity_type` label).
    TaskKind { Tool = "tool", Http = "http", Wait = "wait" }
);

vocabulary!(
    /// `task_attempts.outcome` and `tasks.last_outcome`: `rescued` is a lease that expired under
    /// a dead worker, not a failure of the task.
    AttemptOutcome { Success = "success", Error = "error", Timeout = "timeout", Rescued = "rescued" }
);

vocabulary!(
    /// The store a queue runs on.
    Backend { Postgres = "postgres", Sqlite = "sqlite" }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_and_strangers_are_refused() {
        for k in TaskKind::ALL {
            assert_eq!(TaskKind::parse(k.as_str()), Some(*k));
        }
        for s in TaskState::ALL {
            assert_eq!(TaskState::parse(s.as_str()), Some(*s));
        }
        assert_eq!(TaskKind::parse("shell"), None);
        assert_eq!(RunStatus::parse("Running"), None);
        assert_eq!(AttemptOutcome::Rescued.to_string(), "rescued");
    }
}
