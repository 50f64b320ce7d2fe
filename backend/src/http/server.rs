//! The accept loops: one hyper HTTP/1 connection per socket (TCP, and a Unix socket when
//! configured), each request to [`super::handle`], and a graceful shutdown that lets
//! in-flight requests finish within the grace period.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::rt::{Read, Write};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, UnixListener};

use crate::app::App;

/// Binds the Unix socket at `path` (a stale socket file left by a killed process is
/// replaced). Mode 0666, as open as the loopback TCP port beside it: the edge's workers run
/// as another user; the directory it lives in decides who can reach it.
pub fn listen_unix(path: &Path) -> Result<UnixListener, crate::error::StartError> {
    let fail = |e: std::io::Error| crate::error::StartError::Listen(path.display().to_string(), e);
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    let listener = UnixListener::bind(path).map_err(fail)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(fail)?;
    Ok(listener)
}

/// Serves connections until `shutdown` resolves, then waits (up to the grace period) for
/// in-flight requests to finish. Idle keep-alive connections are closed at once.
pub async fn serve(
    app: Arc<App>,
    tcp: TcpListener,
    unix: Option<UnixListener>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    serve_one(&app, &http, &graceful, TokioIo::new(stream));
                }
                Err(e) => backoff(e).await,
            },
            accepted = accept_unix(unix.as_ref()) => match accepted {
                Ok(stream) => serve_one(&app, &http, &graceful, TokioIo::new(stream)),
                Err(e) => backoff(e).await,
            },
            _ = &mut shutdown => break,
        }
    }
    drop(tcp);
    drop(unix);
    if tokio::time::timeout(app.cfg.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!("seckill: some requests were still running after the grace period");
    }
}

/// One connection, served on its own task and watched by the graceful shutdown.
fn serve_one<I>(app: &Arc<App>, http: &http1::Builder, graceful: &GracefulShutdown, io: I)
where
    I: Read + Write + Unpin + Send + 'static,
{
    let app = app.clone();
    let svc = service_fn(move |req| super::handle(app.clone(), req));
    let conn = graceful.watch(http.serve_connection(io, svc));
    tokio::spawn(async move {
        // Client resets and timeouts end a connection; they are not our errors.
        let _ = conn.await;
    });
}

/// The next connection on the Unix socket; never, when there is none.
async fn accept_unix(unix: Option<&UnixListener>) -> std::io::Result<tokio::net::UnixStream> {
    match unix {
        Some(l) => l.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

/// Out of file descriptors and the like: back off instead of spinning.
async fn backoff(e: std::io::Error) {
    eprintln!("seckill: accept failed: {e}");
    tokio::time::sleep(Duration::from_millis(20)).await;
}
