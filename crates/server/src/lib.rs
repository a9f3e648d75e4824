//! The Compozy HTTP server: routing, the middleware stack, health, readiness and `/metrics`.

pub mod api;
pub mod app;
pub mod config;
pub mod connections;
pub mod http_metrics;
pub mod layers;
pub mod openapi;
pub mod problem;
pub mod serve;

pub use app::{App, AppBuilder, HttpService};
pub use config::{MonitoringConfig, OtlpConfig, ServerConfig, TracingConfig};
pub use problem::Problem;
pub use serve::{serve, shutdown_signal};
