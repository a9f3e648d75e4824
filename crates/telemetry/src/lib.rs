//! Telemetry for the Compozy engine: the metric catalog, typed lock-free instruments, the
//! cardinality guard, `/metrics` exposition and OTLP push.
//!
//! Components never name a metric by string: they build their instruments from a
//! [`catalog`] entry through the [`Registry`], resolve label handles once and record on them.
//!
//! ```
//! use compozy_telemetry::{Format, Registry, RegistryOptions, catalog, render};
//!
//! let registry = Registry::new(RegistryOptions::default());
//! // Resolve the handle once (this also exposes the series at zero), then record on it.
//! let timeouts = registry.counter(&catalog::POSTGRES_CONNECTION_TIMEOUTS).get(&[]);
//! timeouts.inc();
//! let text = render(&registry, Format::Prometheus);
//! assert!(text.contains("compozy_postgres_connection_timeouts_total 1"));
//! ```

pub mod catalog;
pub mod docs;
pub mod exemplar;
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
