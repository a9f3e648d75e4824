//! Tower layers of the HTTP stack, one job each. Their order is set in `app.rs`.

pub mod body_limit;
pub mod catch_panic;
pub mod metrics;
pub mod request_id;
pub mod route_tag;
