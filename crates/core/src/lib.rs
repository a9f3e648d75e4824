//! Vocabulary shared by every Compozy crate.

pub mod gather;
pub mod private_fs;
pub mod problem;
pub mod readiness;
pub mod secret;

pub use readiness::{ComponentState, Readiness};
pub use secret::Secret;
