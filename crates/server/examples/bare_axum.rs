//! A bare axum server answering `/healthz` like the engine does: the baseline of
//! `scripts/bench-http.sh`. Usage: `bare_axum 127.0.0.1:5101`.

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:5101".into());
    let app = Router::new().route("/healthz", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
