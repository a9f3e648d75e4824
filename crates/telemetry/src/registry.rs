//! The registry: every family of this process, created from catalog entries.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::catalog::{self, Kind, MetricDef};
use crate::family::{Collect, Family, Instrument, Observed};
use crate::instruments::{Counter, Gauge, Histogram, UpDownGauge};

/// Limits and naming applied to every family.
#[derive(Clone, Debug)]
pub struct RegistryOptions {
    /// Prefix of every `compozy_` metric (`monitoring.namespace`).
    pub namespace: String,
    /// Default series cap per family.
    pub series_limit: usize,
    /// Per-family caps, keyed by the exposed name (`compozy_http_requests_total` or the family name).
    pub series_limits: BTreeMap<String, usize>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self { namespace: "compozy".into(), series_limit: 2000, series_limits: BTreeMap::new() }
    }
}

struct Entry {
    def: &'static MetricDef,
    collect: Arc<dyn Collect>,
    typed: Arc<dyn Any + Send + Sync>,
}

/// Holds every family of the process. Cheap to share behind an `Arc`.
pub struct Registry {
    options: RegistryOptions,
    entries: Mutex<Vec<Entry>>,
    overflow: Arc<Family<Counter>>,
}

impl Registry {
    pub fn new(options: RegistryOptions) -> Arc<Self> {
        // The overflow family is bounded by the number of families, so it is never capped.
        let overflow = Arc::new(Family::new(&catalog::METRICS_OVERFLOW, usize::MAX, Arc::new(Counter::default())));
        let registry = Registry { options, entries: Mutex::new(Vec::new()), overflow: overflow.clone() };
        registry.entries.lock().push(Entry {
            def: &catalog::METRICS_OVERFLOW,
            collect: overflow.clone(),
            typed: overflow,
        });
        Arc::new(registry)
    }

    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    pub fn namespace(&self) -> &str {
        &self.options.namespace
    }

    fn cap_for(&self, def: &MetricDef) -> usize {
        let ns = &self.options.namespace;
        let limits = &self.options.series_limits;
        limits
            .get(&def.sample_name(ns))
            .or_else(|| limits.get(&def.family_name(ns)))
            .copied()
            .unwrap_or(self.options.series_limit)
    }

    fn family<M: Instrument>(&self, def: &'static MetricDef, kind: Kind) -> Arc<Family<M>> {
        assert_eq!(def.kind, kind, "{} is not a {kind:?}", def.name);
        let mut entries = self.entries.lock();
        if let Some(e) = entries.iter().find(|e| std::ptr::eq(e.def, def))
            && let Ok(f) = e.typed.clone().downcast::<Family<M>>()
        {
            return f;
        }
        // Labelled with the name queries use (`…_total` for counters), as `series_limits` is keyed.
        let folds = self.overflow.get(&[&def.sample_name(&self.options.namespace)]);
        let family = Arc::new(Family::<M>::new(def, self.cap_for(def), folds));
        entries.push(Entry { def, collect: family.clone(), typed: family.clone() });
        family
    }

    pub fn counter(&self, def: &'static MetricDef) -> Arc<Family<Counter>> {
        self.family(def, Kind::Counter)
    }

    pub fn histogram(&self, def: &'static MetricDef) -> Arc<Family<Histogram>> {
        self.family(def, Kind::Histogram)
    }

    /// A gauge moved by events (`inc`/`dec`).
    pub fn updown(&self, def: &'static MetricDef) -> Arc<Family<UpDownGauge>> {
        self.family(def, Kind::Gauge)
    }

    /// A gauge set to values.
    pub fn gauge(&self, def: &'static MetricDef) -> Arc<Family<Gauge>> {
        self.family(def, Kind::Gauge)
    }

    /// A family whose samples `callback` produces at each collection, as `(label values, value)`.
    /// Use it for state owned elsewhere (pool sizes, queue depths): nothing is recorded per request.
    pub fn observe<F>(&self, def: &'static MetricDef, callback: F)
    where
        F: Fn(&mut dyn FnMut(&[&str], f64)) + Send + Sync + 'static,
    {
        let observed = Arc::new(Observed::new(def, Box::new(callback)));
        let mut entries = self.entries.lock();
        entries.retain(|e| !std::ptr::eq(e.def, def));
        entries.push(Entry { def, collect: observed.clone(), typed: observed });
    }

    /// Every family, in catalog order (families outside the catalog last).
    pub fn collectors(&self) -> Vec<Arc<dyn Collect>> {
        let entries = self.entries.lock();
        let mut out: Vec<(usize, Arc<dyn Collect>)> = entries
            .iter()
            .map(|e| {
                let pos = catalog::CATALOG.iter().position(|d| std::ptr::eq(*d, e.def)).unwrap_or(usize::MAX);
                (pos, e.collect.clone())
            })
            .collect();
        out.sort_by_key(|(pos, _)| *pos);
        out.into_iter().map(|(_, c)| c).collect()
    }
}
