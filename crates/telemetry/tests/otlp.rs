//! The OTLP exporter's request, received by a local HTTP server and decoded.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use compozy_telemetry::otlp::{Exporter, OtlpOptions};
use compozy_telemetry::{Registry, RegistryOptions, catalog};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
use prost::Message;
use tokio::sync::mpsc;

type Received = mpsc::UnboundedSender<(HeaderMap, Bytes)>;

async fn receive(State(tx): State<Received>, headers: HeaderMap, body: Bytes) -> &'static str {
    let _ = tx.send((headers, body));
    ""
}

#[tokio::test]
async fn export_is_received_and_decodes_to_our_values() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = Router::new().route("/v1/metrics", post(receive)).with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let registry = Registry::new(RegistryOptions::default());
    registry.counter(&catalog::WEBHOOK_DELIVERIES).get(&["github", "accepted"]).add(3);
    let _empty = registry.counter(&catalog::AUTH_ATTEMPTS);
    let h = registry.histogram(&catalog::HTTP_REQUEST_DURATION).get(&["GET", "/healthz", "200"]);
    h.observe(0.002);
    h.observe(3.0);

    let options = OtlpOptions {
        endpoint: format!("http://{addr}"),
        interval: Duration::from_millis(50),
        timeout: Duration::from_secs(2),
        headers: vec![("authorization".into(), "Bearer t0ken".into())],
        service_name: "compozy-test".into(),
        service_version: "0.0.0".into(),
    };
    let exporter = Exporter::new(Arc::clone(&registry), options).expect("client");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(exporter.run(async move {
        let _ = stop_rx.await;
    }));

    let (headers, body) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("export").expect("body");
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(headers["authorization"], "Bearer t0ken");
    let request = ExportMetricsServiceRequest::decode(body).expect("protobuf");
    let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;

    let deliveries = metrics.iter().find(|m| m.name == "compozy_webhook_deliveries").expect("deliveries");
    let Some(Data::Sum(sum)) = &deliveries.data else { panic!("counter must be a Sum") };
    assert!(sum.is_monotonic);
    assert_eq!(sum.aggregation_temporality, 2, "cumulative");
    assert_eq!(sum.data_points[0].value, Some(Value::AsInt(3)));
    assert!(sum.data_points[0].start_time_unix_nano > 0, "cumulative sums carry their start");
    let attrs: Vec<_> = sum.data_points[0].attributes.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(attrs, ["source", "result"]);

    let duration = metrics.iter().find(|m| m.name == "compozy_http_request_duration").expect("duration");
    assert_eq!(duration.unit, "s");
    let Some(Data::Histogram(hist)) = &duration.data else { panic!("histogram") };
    let p = &hist.data_points[0];
    assert_eq!(p.count, 2);
    assert_eq!(p.sum, Some(3.002));
    assert_eq!(p.explicit_bounds, catalog::HTTP_REQUEST_DURATION.buckets);
    assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1);
    assert_eq!(p.bucket_counts[1], 1, "0.002 falls in le=0.005");
    assert_eq!(p.bucket_counts[10], 1, "3.0 falls in le=5");
    // Families with no series are not sent as empty metrics.
    assert!(!metrics.iter().any(|m| m.name == "compozy_auth_attempts"));

    // Shutdown pushes one last time and ends the task.
    stop_tx.send(()).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("exporter stops").expect("join");
}
