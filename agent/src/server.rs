//! The standalone server's accept loop.
//!
//! Why not a framework's `serve`: hyper notices a client that went away only when it happens to poll the
//! socket, which it does not reliably do while a handler is pending, so a `curl` killed during a
//! 30-second window left the profiler taken (and every other client refused) until the window
//! ended. Here each connection is served next to a watcher that peeks at the socket every 100 ms;
//! when the peer has closed it, the connection future, and with it the handler and its profile,
//! is dropped at once. A client that half-closes its side after sending a request is treated as
//! gone, as hyper itself does by default.

use std::convert::Infallible;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use crate::http::{self, Shared};

const WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Serves the endpoints on `listener` until the future is dropped.
pub(crate) async fn serve(listener: TcpListener, shared: Shared) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors and the like: back off instead of spinning.
            Err(_) => {
                tokio::time::sleep(WATCH_INTERVAL).await;
                continue;
            }
        };
        tokio::spawn(serve_connection(stream, shared.clone()));
    }
}

async fn serve_connection(stream: TcpStream, shared: Shared) {
    let fd = stream.as_raw_fd();
    let service = service_fn(move |request: Request<Incoming>| {
        let shared = shared.clone();
        // No endpoint reads a body: it is dropped here rather than held for a whole window.
        let (head, _) = request.into_parts();
        async move { Ok::<_, Infallible>(http::handle(&shared, &head).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(stream), service);
    // `fd` stays valid while `connection`, which owns the stream, is alive: both live in this
    // select and the watcher is dropped no later than the connection.
    tokio::select! {
        _ = connection => {}
        _ = peer_closed(fd) => {}
    }
}

/// Resolves once the peer has closed the connection or it has failed.
async fn peer_closed(fd: RawFd) {
    loop {
        tokio::time::sleep(WATCH_INTERVAL).await;
        let mut byte = 0u8;
        // SAFETY: `fd` is an open socket (see `serve_connection`); the buffer is one valid byte.
        // MSG_PEEK leaves any data for hyper; MSG_DONTWAIT makes this a poll.
        let n = unsafe {
            libc::recv(
                fd,
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n == 0 {
            return;
        }
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if !matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            ) {
                return;
            }
        }
    }
}
