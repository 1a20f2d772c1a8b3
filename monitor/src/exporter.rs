//! The HTTP endpoint: `/metrics` (Prometheus text format), `/healthz`, and
//! a landing page at `/` that links them. Unknown paths answer 404; other
//! methods than GET (and HEAD) on these paths 405, from axum's method
//! routers. `web` serves this router, with TLS and authentication when set.

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::{Html, IntoResponse},
    routing::get,
};

use std::sync::{Arc, Mutex};

/// What the endpoint serves: the daemon's metrics, refreshed per scrape.
pub trait Scrape: Send + 'static {
    fn scrape(&mut self) -> prometheus::Result<String>;
}

pub type Scraped = Arc<Mutex<dyn Scrape>>;

/// What a browser pointed at the exporter's address sees.
const LANDING: &str = "<!DOCTYPE html>
<html><head><meta charset=\"utf-8\"><title>agentmon</title></head>
<body><h1>agentmon</h1>
<p>Where AI coding agents send data: an eBPF network monitor.</p>
<ul><li><a href=\"/metrics\">/metrics</a>: Prometheus metrics</li>
<li><a href=\"/healthz\">/healthz</a>: health</li></ul>
</body></html>
";

pub fn router(state: Scraped) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/", get(|| async { Html(LANDING) }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(state)
}

async fn metrics(State(state): State<Scraped>) -> impl IntoResponse {
    // Map reads are a few syscalls per open connection: fine to do inline.
    let text = state.lock().unwrap_or_else(|e| e.into_inner()).scrape();
    match text {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            text,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}\n"),
        )
            .into_response(),
    }
}
