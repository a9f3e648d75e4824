//! The machine's PostgreSQL and Redis, as the binary's tests use them (through `psql` and a
//! TCP probe, so these tests need no async runtime).

use std::net::TcpStream;
use std::process::Command;

pub fn psql(sql: &str) -> bool {
    Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qAtc", sql])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn redis_up() -> bool {
    TcpStream::connect("127.0.0.1:6379").is_ok()
}

/// A database for one test, dropped afterwards (failing tests included).
pub struct TestDb(pub String);

impl TestDb {
    /// `tag` keeps the databases of tests running in one process apart.
    pub fn create(tag: &str) -> Option<TestDb> {
        let name = format!("compozy_cli_{tag}_{}", std::process::id());
        psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        psql(&format!("CREATE DATABASE {name}")).then_some(TestDb(name))
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.0)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0));
    }
}
