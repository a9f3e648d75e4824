//! The Redis pool's connections: bb8's manager for them, and how their errors read as the
//! cache's. The cache (`redis.rs`) and its command pipeline (`pipeline.rs`) both build on this.

use std::time::{Duration, Instant};

use bb8::{ManageConnection, Pool, RunError};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};

use crate::error::{CacheError, Unavailable};

pub(crate) const BACKEND: &str = "redis";

/// A connection checked out within this long of its last successful command is handed out
/// without a `PING`: pinging on every check-out doubled the round trips of every command (one
/// `PING` per `SET` under load). A connection that died in the window fails its command, is
/// marked broken and closed; one idle for longer is pinged (and replaced if dead) first.
const ALIVE_BYPASS: Duration = Duration::from_millis(500);

/// A connection, when it last answered, and whether a command on it failed at the connection
/// level; bb8 closes broken connections when they come back (counted in
/// `connections_closed_broken`).
pub struct RedisConn {
    conn: MultiplexedConnection,
    answered: Instant,
    pub(super) broken: bool,
}

impl RedisConn {
    /// The raw connection, for commands this API does not cover.
    pub fn connection(&mut self) -> &mut MultiplexedConnection {
        &mut self.conn
    }

    /// Notes that the connection just answered (no `PING` at its next checkout).
    pub(super) fn answered(&mut self) {
        self.answered = Instant::now();
    }
}

/// bb8-redis's manager without its two gaps: connect and response timeouts, and broken-connection
/// reporting (it never reports one).
#[derive(Clone)]
pub struct RedisManager {
    client: Client,
    config: AsyncConnectionConfig,
}

impl RedisManager {
    pub(super) fn new(client: Client, config: AsyncConnectionConfig) -> Self {
        Self { client, config }
    }
}

impl ManageConnection for RedisManager {
    type Connection = RedisConn;
    type Error = RedisError;

    async fn connect(&self) -> Result<RedisConn, RedisError> {
        let conn = self.client.get_multiplexed_async_connection_with_config(&self.config).await?;
        Ok(RedisConn { conn, answered: Instant::now(), broken: false })
    }

    async fn is_valid(&self, c: &mut RedisConn) -> Result<(), RedisError> {
        if c.answered.elapsed() < ALIVE_BYPASS {
            return Ok(());
        }
        redis::cmd("PING").query_async::<()>(&mut c.conn).await?;
        c.answered = Instant::now();
        Ok(())
    }

    fn has_broken(&self, c: &mut RedisConn) -> bool {
        c.broken
    }
}

pub(super) fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

pub(super) fn unavailable(reason: Unavailable) -> CacheError {
    CacheError::Unavailable { backend: BACKEND, reason }
}

pub(super) fn map_redis(e: RedisError) -> CacheError {
    if e.is_timeout() {
        unavailable(Unavailable::Timeout)
    } else if is_connection_error(&e) {
        tracing::debug!(error = %e, "redis unavailable");
        unavailable(Unavailable::Unreachable)
    } else {
        CacheError::Command(e.to_string())
    }
}

pub(super) async fn pool_get(pool: &Pool<RedisManager>) -> Result<bb8::PooledConnection<'_, RedisManager>, CacheError> {
    pool.get().await.map_err(|e| match e {
        RunError::TimedOut => unavailable(Unavailable::Timeout),
        RunError::User(e) => map_redis(e),
    })
}
