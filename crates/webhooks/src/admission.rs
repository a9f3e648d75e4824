//! Processing slots: `webhooks.max_in_flight` in all, of which one webhook may hold at most its
//! share (`webhooks.per_webhook_share`), so one slug's flood leaves slots for the others. Only
//! verified deliveries take a slot: the body is read and checked first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub(crate) struct Slots {
    total: Arc<Semaphore>,
    per_webhook: usize,
    /// One semaphore per slug with a delivery in flight (an unknown slug never gets here). Idle
    /// ones are dropped when another slug is added, so slugs removed by a reload go too.
    shares: RwLock<HashMap<Box<str>, Arc<Semaphore>>>,
}

/// A held slot; released when dropped.
pub(crate) struct Permit {
    _share: OwnedSemaphorePermit,
    _total: OwnedSemaphorePermit,
}

impl Slots {
    pub(crate) fn new(total: usize, per_webhook: usize) -> Self {
        Self { total: Arc::new(Semaphore::new(total)), per_webhook, shares: RwLock::new(HashMap::new()) }
    }

    /// A slot for `slug`, waiting at most `wait` for it (its share first, then the pool).
    pub(crate) async fn acquire(&self, slug: &str, wait: Duration) -> Option<Permit> {
        let share = self.share(slug);
        let both = async {
            let share = share.acquire_owned().await.ok()?;
            let total = self.total.clone().acquire_owned().await.ok()?;
            Some(Permit { _share: share, _total: total })
        };
        tokio::time::timeout(wait, both).await.ok().flatten()
    }

    fn share(&self, slug: &str) -> Arc<Semaphore> {
        if let Some(s) = self.shares.read().get(slug) {
            return s.clone();
        }
        let mut shares = self.shares.write();
        // Clones are made under this lock only, so a share no acquire holds is one no permit
        // holds either (a held permit owns a clone): it is at its full count, and a new one
        // made on its slug's next delivery is the same.
        shares.retain(|_, share| Arc::strong_count(share) > 1);
        shares.entry(slug.into()).or_insert_with(|| Arc::new(Semaphore::new(self.per_webhook))).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_webhook_cannot_take_the_others_slots() {
        let slots = Slots::new(4, 2);
        let wait = Duration::from_millis(20);
        let a1 = slots.acquire("a", wait).await;
        let a2 = slots.acquire("a", wait).await;
        assert!(a1.is_some() && a2.is_some());
        assert!(slots.acquire("a", wait).await.is_none(), "over its share");
        let b = (slots.acquire("b", wait).await, slots.acquire("b", wait).await);
        assert!(b.0.is_some() && b.1.is_some(), "the other webhook still gets its share");
        assert!(slots.acquire("c", wait).await.is_none(), "the pool is full");
        drop(a1);
        assert!(slots.acquire("c", wait).await.is_some());
    }

    #[tokio::test]
    async fn idle_webhooks_are_forgotten_and_busy_ones_keep_their_share() {
        let slots = Slots::new(8, 2);
        let wait = Duration::from_millis(20);
        let held = slots.acquire("busy", wait).await;
        for i in 0..100 {
            assert!(slots.acquire(&format!("gone-{i}"), wait).await.is_some());
        }
        assert_eq!(slots.shares.read().len(), 2, "the busy slug and the last one");
        let second = slots.acquire("busy", wait).await;
        assert!(second.is_some());
        assert!(slots.acquire("busy", wait).await.is_none(), "the busy slug's share still counts its held slot");
        drop((held, second));
        assert!(slots.acquire("busy", wait).await.is_some());
    }
}
