//! apalis (PostgreSQL backend) doing what `scripts/bench-worker.sh` has compozy's workers do:
//! no-op jobs, burned down by worker processes, then trickled one at a time to idle workers.
//!
//! ```text
//! apalis-compare setup                      # apalis' own migrations
//! apalis-compare enqueue N                  # N jobs in bulk (workers should not run yet)
//! apalis-compare work CONCURRENCY BATCH     # a worker process, until SIGTERM
//! apalis-compare trickle N GAP_MS           # N jobs one at a time, GAP_MS apart
//! apalis-compare wait                       # until every job ended; prints figures, then clears them
//! ```
//!
//! `DATABASE_URL` names the database (the same one compozy's bench uses).

use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_postgres::{Config, PgPool, PostgresStorage};

const QUEUE: &str = "bench";
const CHUNK: usize = 1000;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().ok_or_else(|| format!("missing argument {i}; see the file's docs"));
    let num = |i: usize| -> Result<usize, Error> { Ok(arg(i)?.parse()?) };
    let pool = PgPool::connect(&std::env::var("DATABASE_URL")?).await?;
    match arg(0)?.as_str() {
        "setup" => PostgresStorage::<()>::setup(&pool).await?,
        "enqueue" => enqueue(&pool, num(1)?).await?,
        "work" => work(&pool, num(1)?, num(2)?).await?,
        "trickle" => trickle(&pool, num(1)?, num(2)? as u64).await?,
        "wait" => report(&pool).await?,
        other => return Err(format!("unknown command `{other}`").into()),
    }
    Ok(())
}

fn storage(pool: &PgPool, batch: usize) -> PostgresStorage<u64> {
    PostgresStorage::new(pool).with_config(Config::default().queue(QUEUE).batch_size(batch))
}

async fn enqueue(pool: &PgPool, n: usize) -> Result<(), Error> {
    let mut backend = storage(pool, 1);
    let started = Instant::now();
    let mut left = n;
    while left > 0 {
        let take = left.min(CHUNK);
        backend.push_bulk((0..take as u64).collect()).await?;
        left -= take;
    }
    println!("enqueued {n} jobs in {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}

async fn noop(_: u64) -> Result<(), BoxDynError> {
    Ok(())
}

async fn work(pool: &PgPool, concurrency: usize, batch: usize) -> Result<(), Error> {
    let backend = storage(pool, batch).with_pubsub();
    let worker = WorkerBuilder::new(format!("bench-{}", std::process::id()))
        .backend(backend)
        .concurrency(concurrency)
        .build(noop);
    worker
        .run_until(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            term.recv().await;
            Ok::<(), std::io::Error>(())
        })
        .await?;
    Ok(())
}

async fn trickle(pool: &PgPool, n: usize, gap_ms: u64) -> Result<(), Error> {
    let mut backend = storage(pool, 1);
    for i in 0..n as u64 {
        backend.push(i).await?;
        tokio::time::sleep(Duration::from_millis(gap_ms)).await;
    }
    Ok(())
}

/// Polled every 100 ms while the workers drain; stops at the first unfinished job, as compozy's.
const UNFINISHED: &str = "SELECT CAST(CASE WHEN EXISTS (SELECT 1 FROM apalis.jobs WHERE job_type = $1 \
     AND status IN ('Pending', 'Queued', 'Running')) THEN 1 ELSE 0 END AS BIGINT)";
const ENDED: &str = "SELECT COUNT(*), \
     EXTRACT(EPOCH FROM MAX(done_at) - MIN(lock_at))::float8, \
     (PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM lock_at - run_at)))::float8, \
     (PERCENTILE_DISC(0.99) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM lock_at - run_at)))::float8, \
     SUM(attempts) FROM apalis.jobs WHERE job_type = $1 AND status = 'Done'";

/// Waits for the drain, prints the figures in the format of compozy's `queue_bench wait`, and
/// deletes the jobs so that the next phase reads only its own.
async fn report(pool: &PgPool) -> Result<(), Error> {
    loop {
        let left: i64 = sqlx::query_scalar(UNFINISHED).bind(QUEUE).fetch_one(pool).await?;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (n, window, p50, p99, attempts): (i64, Option<f64>, Option<f64>, Option<f64>, Option<i64>) =
        sqlx::query_as(ENDED).bind(QUEUE).fetch_one(pool).await?;
    let window = window.unwrap_or(0.0).max(0.001);
    println!(
        "tasks={n} attempts={} window_s={window:.3} tasks_per_s={:.0} s2s_p50_ms={:.0} s2s_p99_ms={:.0}",
        attempts.unwrap_or(0),
        n as f64 / window,
        p50.unwrap_or(0.0) * 1000.0,
        p99.unwrap_or(0.0) * 1000.0
    );
    sqlx::query("DELETE FROM apalis.jobs WHERE job_type = $1").bind(QUEUE).execute(pool).await?;
    Ok(())
}
