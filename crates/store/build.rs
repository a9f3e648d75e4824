//! Rebuild when a migration is added or changed: `sqlx::migrate!` embeds the files at compile
//! time but does not tell cargo to watch the directories.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=migrations/postgres");
    println!("cargo:rerun-if-changed=migrations/sqlite");
}
