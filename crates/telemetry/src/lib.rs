//! Telemetry for the Compozy engine: the metric catalog, typed lock-free instruments, the
//! cardinality guard, `/metrics` exposition and OTLP push.
//!
//! Components never name a metric by string: they build their instruments from a
//! [`catalog`] entry through the [`Registry`], resolve label handles once and record on them.

pub mod catalog;
pub mod docs;
pub mod exposition;
pub mod family;
pub mod instruments;
pub mod otlp;
pub mod process;
pub mod registry;

pub use exposition::{Format, render};
pub use family::{Family, OVERFLOW};
pub use instruments::{Counter, Gauge, Histogram, UpDownGauge};
pub use registry::{Registry, RegistryOptions};
