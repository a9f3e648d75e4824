//! Structured logs on stderr: JSON when not a terminal (or `log.format: json`), human-readable
//! otherwise. `RUST_LOG` overrides `log.level`. With tracing on, the spans go to the exporter's
//! layer only, and a line written inside a sampled span carries its `trace_id` and `span_id`.

use std::io::IsTerminal;

use compozy_telemetry::traces::{Tracing, WithTraceIds};
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogConfig, LogFormat};

pub fn init(config: &LogConfig, tracing: Option<&Tracing>) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(v)?,
        _ => EnvFilter::try_new(&config.level)
            .map_err(|e| anyhow::anyhow!("invalid configuration: `log.level` = {:?}: {e}", config.level))?,
    };
    let json = match config.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let result = match tracing {
        None => {
            let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
            if json { builder.json().flatten_event(true).try_init() } else { builder.try_init() }
        }
        Some(tracing) => {
            // The log layer keeps its level filter and sees no span: spans are the exporter's.
            let lines = filter.and(filter_fn(|m| !m.is_span()));
            let base = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
            let logs = if json {
                let format = tracing_subscriber::fmt::format()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false);
                base.fmt_fields(JsonFields::new())
                    .event_format(WithTraceIds::new(format, true))
                    .with_filter(lines)
                    .boxed()
            } else {
                let format = tracing_subscriber::fmt::format();
                base.event_format(WithTraceIds::new(format, false)).with_filter(lines).boxed()
            };
            tracing_subscriber::registry().with(logs).with(tracing.layer()).try_init().map_err(Into::into)
        }
    };
    result.map_err(|e| anyhow::anyhow!("cannot initialise logging: {e}"))
}
