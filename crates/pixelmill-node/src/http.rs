//! The HTTP server under the API: axum's router on hyper's connection builder, driven by our own
//! accept loop because `axum::serve` sets no header read timeout. A client that opens a
//! connection and sends its headers slowly, or not at all, is cut off after
//! `header_read_timeout` instead of holding the connection (and a task) for as long as it likes.
//! Bodies are bounded by the API itself (`pixelmill_api`'s body limits and timeouts).

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::time::Duration;
use tokio::net::TcpListener;

/// Serves `app` on `listener` until `stop` resolves, then lets the open connections finish their
/// requests (graceful shutdown) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    // CONNECT for HTTP/2 upgrades, as axum::serve enables it.
    builder.http2().enable_connect_protocol();
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: the listener is fine, the moment is not.
                Err(e) => {
                    tracing::warn!(%e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%e, "connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
}
