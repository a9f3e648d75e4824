//! Auto-pipelining: cache commands issued while the pool's connections are busy go to Redis
//! together, as one pipeline on one pooled connection, so under load a round trip (and a read
//! and a write system call on each side) serves many commands. One flusher per pooled connection
//! collects what is waiting (see [`gather`]); a lone command still goes at once, and each caller
//! gets its own reply or error.
//!
//! Every pipeline is one pool get, so the `redis_pool_*` counters count round trips.

use std::sync::Arc;

use bb8::Pool;
use compozy_core::gather::gather;
use redis::{RedisResult, Value};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::connection::{RedisManager, is_connection_error, map_redis, pool_get, unavailable};
use crate::error::{CacheError, Unavailable};

/// Most commands in one pipeline: bounds the request and reply buffers.
const MAX_BATCH: usize = 256;

struct Queued {
    cmd: redis::Cmd,
    reply: oneshot::Sender<Result<Value, CacheError>>,
}

type Receiver = Arc<Mutex<mpsc::UnboundedReceiver<Queued>>>;

/// Handle to the flushers; they stop when every handle is dropped.
#[derive(Clone)]
pub(super) struct Pipeline {
    tx: mpsc::UnboundedSender<Queued>,
}

impl Pipeline {
    /// Spawns `flushers` flushers on the current runtime.
    pub(super) fn spawn(pool: Pool<RedisManager>, flushers: usize) -> Pipeline {
        let (tx, rx) = mpsc::unbounded_channel();
        let rx: Receiver = Arc::new(Mutex::new(rx));
        for _ in 0..flushers.max(1) {
            tokio::spawn(flush_loop(pool.clone(), rx.clone()));
        }
        Pipeline { tx }
    }

    /// Sends `cmd` with whatever else is waiting; its reply, or the error it met.
    pub(super) async fn send(&self, cmd: redis::Cmd) -> Result<Value, CacheError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Queued { cmd, reply }).map_err(|_| unavailable(Unavailable::Closed))?;
        rx.await.map_err(|_| unavailable(Unavailable::Closed))?
    }
}

async fn flush_loop(pool: Pool<RedisManager>, rx: Receiver) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        // The lock is held while waiting, so the other flushers send while this one collects.
        if gather(&mut *rx.lock().await, &mut batch, MAX_BATCH).await == 0 {
            return;
        }
        match pool_get(&pool).await {
            Ok(mut conn) => {
                let mut pipe = redis::pipe();
                pipe.ignore_errors();
                let mut replies = Vec::with_capacity(batch.len());
                // A caller that stopped waiting (a dropped request) does not get its command run.
                for q in batch.drain(..).filter(|q| !q.reply.is_closed()) {
                    pipe.add_command(q.cmd);
                    replies.push(q.reply);
                }
                if replies.is_empty() {
                    continue;
                }
                let answers: RedisResult<Vec<RedisResult<Value>>> = pipe.query_async(conn.connection()).await;
                match answers {
                    Ok(answers) if answers.len() != replies.len() => {
                        // Replies can no longer be matched to callers: fail them all, drop the connection.
                        conn.broken = true;
                        let e = CacheError::Command(format!("{} replies to {} commands", answers.len(), replies.len()));
                        fail_all(replies, &e);
                    }
                    Ok(answers) => {
                        conn.answered();
                        for (answer, reply) in answers.into_iter().zip(replies) {
                            let _ = reply.send(answer.map_err(map_redis));
                        }
                    }
                    Err(e) => {
                        conn.broken = is_connection_error(&e);
                        fail_all(replies, &map_redis(e));
                    }
                }
            }
            Err(e) => {
                // Commands queued meanwhile would wait for the same pool: answer them now too,
                // unless another flusher is collecting them.
                if let Ok(mut rx) = rx.try_lock() {
                    while let Ok(q) = rx.try_recv() {
                        batch.push(q);
                    }
                }
                fail_all(batch.drain(..).map(|q| q.reply), &e);
            }
        }
    }
}

fn fail_all(replies: impl IntoIterator<Item = oneshot::Sender<Result<Value, CacheError>>>, e: &CacheError) {
    for reply in replies {
        let _ = reply.send(Err(e.clone()));
    }
}
