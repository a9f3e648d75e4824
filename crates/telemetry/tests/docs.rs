//! `docs/metrics.md` must be the catalog table, rendered. Regenerate with
//! `COMPOZY_UPDATE_DOCS=1 cargo test -p compozy-telemetry --test docs`.

use std::path::PathBuf;

#[test]
fn metrics_doc_matches_catalog() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md");
    let generated = compozy_telemetry::docs::markdown();
    if std::env::var_os("COMPOZY_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).expect("write docs/metrics.md");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "docs/metrics.md differs from the catalog; run COMPOZY_UPDATE_DOCS=1 cargo test -p compozy-telemetry --test docs"
    );
}

#[test]
fn catalog_names_are_unique_and_follow_conventions() {
    use compozy_telemetry::catalog::{CATALOG, Kind};
    let mut seen = std::collections::HashSet::new();
    for def in CATALOG {
        let name = def.sample_name("compozy");
        assert!(seen.insert(name.clone()), "duplicate {name}");
        assert!(!def.name.ends_with("_total"), "{name}: _total is added by the exposition");
        assert_eq!(def.kind == Kind::Histogram, !def.buckets.is_empty(), "{name}: buckets iff histogram");
        assert!(def.buckets.windows(2).all(|w| w[0] < w[1]), "{name}: buckets must increase");
        assert!(def.buckets.len() < compozy_telemetry::instruments::MAX_BUCKETS, "{name}: too many buckets");
        assert!(def.labels.len() <= compozy_telemetry::family::MAX_LABELS, "{name}: too many labels");
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{name}");
    }
}
