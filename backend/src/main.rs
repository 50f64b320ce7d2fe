//! `seckill`: reads its configuration, connects, and serves until SIGINT or SIGTERM.

use seckill::error::StartError;
use tokio::net::{TcpListener, TcpSocket};

#[tokio::main]
async fn main() {
    if let Err(e) = start().await {
        eprintln!("seckill: {e}");
        std::process::exit(1);
    }
}

async fn start() -> Result<(), StartError> {
    let cfg = seckill::config::Config::from_env().map_err(StartError::Config)?;
    let listener = listen(cfg.listen).map_err(|e| StartError::Listen(cfg.listen.to_string(), e))?;
    let app = seckill::app::App::connect(cfg).await?;
    if let Ok(addr) = listener.local_addr() {
        eprintln!("seckill: listening on {addr}");
    }
    seckill::service::run(app, listener, shutdown_signal()).await?;
    eprintln!("seckill: stopped");
    Ok(())
}

/// A listener with a deep accept queue: at a sale's start the edge opens hundreds of
/// connections at once, and a full queue drops SYNs (a one-second stall per retry).
fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term =
        signal(SignalKind::terminate()).expect("installing a SIGTERM handler works at start");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!("seckill: shutting down");
}
