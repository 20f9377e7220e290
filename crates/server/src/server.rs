//! The accept loop: TLS, HTTP/1.1 with upgrades, graceful shutdown.
//!
//! [`serve`] takes a bound listener and a shutdown future, so the binary is
//! a few lines and tests run the same server on port 0. Each connection is
//! its own task: TLS handshake (bounded in time), then hyper serving the
//! axum router. A semaphore caps open connections, and
//! [`PerAddress`](crate::limits::PerAddress) those of one address; each
//! request carries its peer's address (`ConnectInfo`). At shutdown the loop
//! stops accepting, every connection is asked to finish its current
//! request, RTE sessions are told to close, and `serve` waits (bounded)
//! until the connection tasks are gone.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::limits::{PerAddress, descriptor_room};
use crate::state::AppState;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for open connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves the application on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()>) {
    let acceptor = TlsAcceptor::from(state.tls().config.clone());
    let router = crate::api::router(state.clone());
    let limits = state.limits().clone();
    let limit = Arc::new(Semaphore::new(descriptor_room(limits.connections)));
    let per_address = Arc::new(PerAddress::default());
    // Each connection task holds a clone of `done_tx`; when all are dropped,
    // `done_rx.recv()` returns None (mini-redis' shutdown_complete).
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "listening");
    }
    // Expired and unfinished uploads: now, then periodically; it stops at
    // shutdown by itself.
    tokio::spawn(crate::uploads::run_sweeper(state.clone()));
    // Disposals a crash interrupted are finished, then retention runs now
    // and every `retention.interval_hours`.
    tokio::spawn(crate::compliance::retention::run_scheduled(state.clone()));
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            t = accept(&listener) => t,
            () = &mut shutdown => break,
        };
        // Over its address's share: closed at once, before any TLS work.
        let Some(slot) = per_address.acquire(peer.ip(), limits.connections_per_address) else {
            state.metrics().connections_refused.inc();
            tracing::debug!(%peer, "too many connections from this address");
            continue;
        };
        let (acceptor, router, state, done) = (
            acceptor.clone(),
            router.clone(),
            state.clone(),
            done_tx.clone(),
        );
        tokio::spawn(async move {
            connection(tcp, peer, acceptor, router, state).await;
            drop(slot);
            drop(permit);
            drop(done);
        });
    }
    tracing::info!("shutting down");
    state.begin_shutdown();
    drop(done_tx);
    if tokio::time::timeout(SHUTDOWN_GRACE, done_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
}

/// Idle time before the first TCP keep-alive probe.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// Time between unanswered probes (the OS gives up after its retry count,
/// 9 on Linux, 10 on Windows).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Accepts the next connection, backing off on errors (such as running out
/// of file descriptors) instead of spinning or giving up.
async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                // An agent PC that loses power or network never closes its
                // RTE socket; keep-alive probes find it dead in about two
                // minutes instead of the OS default of hours, so its
                // session and memory are released.
                let keepalive = socket2::TcpKeepalive::new()
                    .with_time(KEEPALIVE_IDLE)
                    .with_interval(KEEPALIVE_INTERVAL);
                if let Err(e) = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive) {
                    tracing::debug!(error = %e, "could not enable TCP keep-alive");
                }
                return (tcp, peer);
            }
            Err(e) => {
                tracing::warn!(error = %e, ?backoff, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    router: axum::Router,
    state: AppState,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            return;
        }
    };
    let service = TowerToHyperService::new(router.map_request(
        move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        },
    ));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(state.limits().request_timeout())
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades();
    tokio::pin!(conn);
    let mut closing = state.closing();
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection error");
            }
        }
        () = async { let _ = closing.wait_for(|c| *c).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
