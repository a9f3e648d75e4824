//! `webhooks:` configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Deliveries processed at once by this process; more wait up to `slot_wait`, then get 503.
    pub max_in_flight: u32,
    /// How long a delivery may wait for a processing slot before it is refused as overloaded.
    #[serde(with = "humantime_serde")]
    pub slot_wait: Duration,
    /// The share of `max_in_flight` one webhook may hold, so one slug's flood cannot starve the
    /// others (`1` lets one webhook take every slot).
    pub per_webhook_share: f64,
    /// How long a delivery's body may take to arrive; it is read before a slot is taken, so a
    /// stalled sender holds no slot, and is answered 408 after this.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Body limit (bytes) of a webhook without its own `body_limit`. The server's
    /// `server.body_limit` still caps every request.
    pub default_body_limit: u64,
    /// How long a delivery ID is remembered when the webhook sets no `dedupe.ttl`.
    #[serde(with = "humantime_serde")]
    pub dedupe_ttl: Duration,
    /// How long the "in progress" mark of a delivery lives: if this process dies mid-delivery the
    /// sender's retry is processed after at most this long.
    #[serde(with = "humantime_serde")]
    pub in_progress_ttl: Duration,
    /// How long raw payloads of accepted deliveries are kept for replay; `0s` keeps none.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How long delivery rows are kept (a run's deliveries also go with it, see `retention.*`);
    /// `0s` keeps them as long as their runs.
    #[serde(with = "humantime_serde")]
    pub delivery_retention: Duration,
    /// `false` turns the webhook metrics' recording off (for overhead measurements only).
    pub metrics: bool,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 256,
            slot_wait: Duration::from_millis(100),
            per_webhook_share: 0.5,
            body_timeout: Duration::from_secs(10),
            default_body_limit: 1024 * 1024,
            dedupe_ttl: Duration::from_secs(24 * 3600),
            in_progress_ttl: Duration::from_secs(60),
            retention: Duration::ZERO,
            delivery_retention: Duration::from_secs(30 * 24 * 3600),
            metrics: true,
        }
    }
}

impl WebhooksConfig {
    /// Slots one webhook may hold at once: its share of `max_in_flight`, at least one.
    pub fn per_webhook_slots(&self) -> usize {
        let share = (f64::from(self.max_in_flight) * self.per_webhook_share).ceil();
        // In 1..=max_in_flight by validation; the cast saturates anyway.
        (share as usize).clamp(1, self.max_in_flight as usize)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.max_in_flight == 0 {
            return Err("webhooks.max_in_flight must be at least 1".into());
        }
        if !(self.per_webhook_share > 0.0 && self.per_webhook_share <= 1.0) {
            return Err("webhooks.per_webhook_share must be greater than 0 and at most 1".into());
        }
        if self.body_timeout.is_zero() {
            return Err("webhooks.body_timeout must be greater than 0".into());
        }
        if self.default_body_limit == 0 {
            return Err("webhooks.default_body_limit must be greater than 0".into());
        }
        if self.dedupe_ttl.is_zero() || self.in_progress_ttl.is_zero() {
            return Err("webhooks.dedupe_ttl and webhooks.in_progress_ttl must be greater than 0".into());
        }
        Ok(())
    }
}
