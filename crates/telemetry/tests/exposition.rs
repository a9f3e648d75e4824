//! The rendered text, read back: names, units, label escaping, bucket placement, the guard.

use compozy_telemetry::{Format, Registry, RegistryOptions, catalog, render};

fn registry(limit: usize) -> std::sync::Arc<Registry> {
    Registry::new(RegistryOptions { series_limit: limit, ..Default::default() })
}

#[test]
fn histogram_and_counter_render_in_both_formats() {
    let r = registry(100);
    let h = r.histogram(&catalog::HTTP_REQUEST_DURATION).get(&["GET", "/healthz", "200"]);
    h.observe(0.003);
    h.observe(0.2);
    r.counter(&catalog::HTTP_REQUESTS).get(&["GET", "/healthz", "200"]).add(2);

    let om = render(&r, Format::OpenMetrics);
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE compozy_http_request_duration_seconds histogram"));
    assert!(om.contains("# UNIT compozy_http_request_duration_seconds seconds"));
    let le = |b: &str| {
        format!(
            "compozy_http_request_duration_seconds_bucket{{le=\"{b}\",method=\"GET\",path=\"/healthz\",status_code=\"200\"}}"
        )
    };
    assert!(om.contains(&format!("{} 0\n", le("0.001"))), "{om}");
    assert!(om.contains(&format!("{} 1\n", le("0.005"))));
    assert!(om.contains(&format!("{} 2\n", le("0.25"))));
    assert!(om.contains(&format!("{} 2\n", le("+Inf"))));
    assert!(om.contains("compozy_http_requests_total{method=\"GET\",path=\"/healthz\",status_code=\"200\"} 2\n"));

    let text = render(&r, Format::Prometheus);
    assert!(!text.contains("# EOF"));
    assert!(text.contains("# TYPE compozy_http_requests_total counter\n"), "{text}");
    assert!(text.contains("compozy_http_requests_total{method=\"GET\",path=\"/healthz\",status_code=\"200\"} 2\n"));
}

#[test]
fn guard_folds_new_label_sets_into_overflow() {
    let r = registry(3);
    let fam = r.counter(&catalog::RATE_LIMIT_BLOCKS);
    for i in 0..10 {
        fam.get(&[&format!("/p{i}"), "ip"]).inc();
    }
    assert_eq!(fam.len(), 3);
    let text = render(&r, Format::Prometheus);
    assert!(
        text.contains("compozy_rate_limit_blocks_total{path=\"__overflow__\",key_type=\"__overflow__\"} 7\n"),
        "{text}"
    );
    assert!(text.contains("compozy_metrics_overflow_total{metric=\"compozy_rate_limit_blocks_total\"} 7\n"), "{text}");
    // An admitted set keeps its own series.
    fam.get(&["/p0", "ip"]).inc();
    assert!(
        render(&r, Format::Prometheus).contains("compozy_rate_limit_blocks_total{path=\"/p0\",key_type=\"ip\"} 2\n")
    );
}

#[test]
fn label_values_are_escaped() {
    let r = registry(10);
    r.counter(&catalog::WEBHOOK_DELIVERIES).get(&["we\"ird\\src\n", "accepted"]).inc();
    let text = render(&r, Format::OpenMetrics);
    assert!(text.contains(r#"source="we\"ird\\src\n""#), "{text}");
}
