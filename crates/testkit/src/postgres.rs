//! A PostgreSQL database per test, on the machine's server (127.0.0.1:5432, trust auth), dropped
//! when the value is dropped, failing tests included.

use sqlx::{Connection, PgConnection};

/// Where tests create their databases from.
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const PG_ADDR: &str = "127.0.0.1:5432";

pub struct TestDb {
    pub name: String,
}

impl TestDb {
    /// A fresh database, or `None` after [`crate::service_missing`] when PostgreSQL is unreachable.
    ///
    /// # Panics
    /// When the server answers but refuses `CREATE DATABASE`.
    pub async fn create() -> Option<TestDb> {
        let mut admin = match PgConnection::connect(PG_ADMIN_URL).await {
            Ok(c) => c,
            Err(e) => {
                crate::service_missing("PostgreSQL", e);
                return None;
            }
        };
        let name = format!("compozy_t_{}", uuid::Uuid::new_v4().simple());
        // The name is generated here, never input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create database");
        Some(TestDb { name })
    }

    pub fn url(&self) -> String {
        self.url_via(PG_ADDR)
    }

    /// Drops the database now (dropping the value does the same, for failing tests too).
    pub async fn drop_db(self) {}

    /// The database's URL through another address (a test proxy).
    pub fn url_via(&self, addr: &str) -> String {
        format!("postgres://postgres@{addr}/{}", self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop may run inside a test's runtime, which must not block on itself: use a thread with
        // its own runtime. FORCE ends the sessions a pool may still hold.
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                let mut admin = PgConnection::connect(PG_ADMIN_URL).await?;
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await.map(|_| ())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}
