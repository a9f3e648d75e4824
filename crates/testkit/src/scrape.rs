//! Reading `/metrics` text and waiting for conditions, as the component tests do.

use std::time::Duration;

/// The value of the sample written exactly `series` (name and labels), if present.
pub fn sample_opt(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().expect("numeric sample"))
}

/// [`sample_opt`], with an absent series read as 0.
pub fn sample(text: &str, series: &str) -> f64 {
    sample_opt(text, series).unwrap_or(0.0)
}

/// Polls `cond` until it holds; panics after `limit` (a hang guard, not a timing assertion).
pub async fn eventually<F, Fut>(what: &str, limit: Duration, cond: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "gave up waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
