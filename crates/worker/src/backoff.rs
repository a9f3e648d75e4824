//! Delay before the next attempt: the workflow's exponential policy with jitter.

use std::time::Duration;

use compozy_autoload::resources::Backoff;

/// `min(initial × multiplier^(attempt-1), max)`, then a uniform draw from its upper half so
/// retries of tasks that failed together spread out.
pub fn delay(policy: &Backoff, attempt: i32) -> Duration {
    let exp = policy.multiplier.powi(attempt.saturating_sub(1).clamp(0, 64));
    let full = (policy.initial.as_secs_f64() * exp).min(policy.max.as_secs_f64());
    let unit = (uuid::Uuid::new_v4().as_u128() & 0xFFFF_FFFF) as f64 / f64::from(u32::MAX);
    Duration::try_from_secs_f64(full * (0.5 + unit / 2.0)).unwrap_or(policy.max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let p = Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(10), multiplier: 2.0 };
        for _ in 0..100 {
            let d3 = delay(&p, 3);
            assert!(d3 >= Duration::from_secs(2) && d3 <= Duration::from_secs(4), "{d3:?}");
            assert!(delay(&p, 40) <= Duration::from_secs(10));
        }
    }
}
