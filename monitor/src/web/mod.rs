//! Serving the exporter's router: our own accept loop rather than
//! `axum::serve`, for what an endpoint on a network needs and `axum::serve`
//! does not give: TLS and basic authentication from a web-config file
//! (`config`, `tls`, `auth`, re-read on change by `watch`), and limits that
//! keep slow or stalled clients from holding the daemon's connections:
//!
//! - at most [`MAX_CONNECTIONS`] at once, and at most
//!   [`slots::PER_ADDRESS`] from one client address (so that a flood from
//!   one address leaves room for the fleet's Prometheus); one more is
//!   closed at once (a queue would only hand the stall to the next
//!   client), and the slots of stalled ones come free through the
//!   timeouts below;
//! - the TLS handshake within [`HANDSHAKE_TIMEOUT`];
//! - each request's headers within [`HEADER_READ_TIMEOUT`] (hyper's timer,
//!   which also closes a kept-alive connection idle that long);
//! - each response within [`REQUEST_TIMEOUT`] (503 otherwise);
//! - a connection lives at most [`MAX_CONNECTION_AGE`]: then it is closed
//!   after its current request, which ends a client that reads its
//!   response too slowly to ever finish.
//!
//! Prometheus's default scrape timeout is 10 s and a scrape takes
//! milliseconds, so none of these bites a real scraper; one reconnects on
//! the next scrape after an idle close.

pub mod auth;
pub mod config;
pub mod slots;
pub mod tls;
pub mod watch;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::{
    Router,
    body::Body,
    http::{Request, Response, StatusCode, header},
    response::IntoResponse,
};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch as signal};
use tower::ServiceExt as _;
use tracing::{debug, warn};

pub use config::ConfigError;
pub use watch::{Settings, Watched};

pub const MAX_CONNECTIONS: u32 = 64;
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(120);
/// How long a stop waits for requests in progress.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `shutdown` completes, then lets the
/// requests in progress finish (at most [`STOP_GRACE`]). `web`: the
/// web config, `None` for plain HTTP without authentication.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    mut web: Option<Watched>,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS as usize));
    let (stop, stopping) = signal::channel(false);
    let plain = Arc::new(Settings::plain());
    tokio::pin!(shutdown);
    let per_address = slots::PerAddress::default();
    let (mut full_warned, mut address_warned) = (false, false);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: give connections
                // in progress a moment to end rather than spin.
                warn!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if !full_warned {
                warn!(
                    "{MAX_CONNECTIONS} connections open: closing new ones until some end \
                     (this warning is given once)"
                );
                full_warned = true;
            }
            drop(stream);
            continue;
        };
        let Some(share) = per_address.take(peer.ip(), slots::PER_ADDRESS) else {
            if !address_warned {
                warn!(
                    client = %peer.ip(),
                    "{} connections open from one address: closing its new ones until some end \
                     (this warning is given once)",
                    slots::PER_ADDRESS
                );
                address_warned = true;
            }
            continue;
        };
        let settings = web.as_mut().map_or_else(|| plain.clone(), Watched::current);
        let (router, stopping) = (router.clone(), stopping.clone());
        tokio::spawn(async move {
            connection(stream, settings, router, stopping).await;
            drop((slot, share));
        });
    }
    let _ = stop.send(true);
    // Every slot back: every connection has ended.
    let all = slots.acquire_many(MAX_CONNECTIONS);
    if tokio::time::timeout(STOP_GRACE, all).await.is_err() {
        debug!("connections still open at stop");
    }
}

async fn connection(
    stream: TcpStream,
    settings: Arc<Settings>,
    router: Router,
    stopping: signal::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    match &settings.tls {
        None => http(stream, settings.clone(), router, stopping).await,
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => http(tls, settings.clone(), router, stopping).await,
                // Plain HTTP to a TLS port, a wrong or missing client
                // certificate: the client sees the handshake fail.
                Ok(Err(e)) => debug!("TLS handshake failed: {e}"),
                Err(_) => debug!("TLS handshake timed out"),
            }
        }
    }
}

async fn http<S>(
    io: S,
    settings: Arc<Settings>,
    router: Router,
    mut stopping: signal::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let (router, users) = (router.clone(), settings.users.clone());
        async move {
            let answer = tokio::time::timeout(REQUEST_TIMEOUT, respond(request, router, users));
            Ok::<_, Infallible>(answer.await.unwrap_or_else(|_| {
                (StatusCode::SERVICE_UNAVAILABLE, "request timed out\n").into_response()
            }))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                debug!("HTTP connection ended: {e}");
            }
            return;
        }
        _ = stopping.wait_for(|stop| *stop) => {}
        () = tokio::time::sleep(MAX_CONNECTION_AGE) => {}
    }
    // Ends after the request in progress, if any.
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, conn).await;
}

async fn respond(
    request: Request<Incoming>,
    router: Router,
    users: Option<Arc<auth::Users>>,
) -> Response<Body> {
    if let Some(users) = users {
        let headers = request.headers().clone();
        // bcrypt takes milliseconds of CPU: off the event loop.
        let allowed = tokio::task::spawn_blocking(move || users.allows(&headers)).await;
        if !matches!(allowed, Ok(true)) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic")],
                "Unauthorized\n",
            )
                .into_response();
        }
    }
    match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
