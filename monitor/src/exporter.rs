//! The HTTP endpoint: `/metrics` (Prometheus text format) and `/healthz`.

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};

use std::sync::{Arc, Mutex};

/// What the endpoint serves: the daemon's metrics, refreshed per scrape.
pub trait Scrape: Send + 'static {
    fn scrape(&mut self) -> prometheus::Result<String>;
}

pub type Scraped = Arc<Mutex<dyn Scrape>>;

pub fn router(state: Scraped) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
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
