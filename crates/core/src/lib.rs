//! Vocabulary shared by every Compozy crate.

pub mod cursor;
pub mod envelope;
pub mod gather;
pub mod private_fs;
pub mod problem;
pub mod readiness;
pub mod secret;
pub mod timestamp;

pub use readiness::{ComponentState, Readiness};
pub use secret::Secret;
