//! Starting where a service starts: inside its own tokio runtime, on a port that may be taken, or
//! again on a port whose previous connections linger in `TIME_WAIT`. Real TCP on loopback.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::{get, loopback, start};

#[tokio::test]
async fn a_restart_binds_while_the_old_connections_are_in_time_wait() {
    let (first, _) = start(loopback());
    let addr = first.local_addr();
    // The server closes first (the client asked it to), so the server's side of this
    // connection, on the agent's port, goes to TIME_WAIT.
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /debug/pprof/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    drop(stream);
    drop(first);

    // Without SO_REUSEADDR the port cannot be bound now: this is the failure being avoided.
    let err = bind_without_reuseaddr(addr).expect_err("the port is in TIME_WAIT");
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");

    let (second, base) = start(loopback().bind(addr));
    assert_eq!(second.local_addr(), addr);
    assert_eq!(get(&format!("{base}/debug/pprof/")).await.status(), 200);
}

/// Inside the service's runtime (`#[tokio::main]`), a failed start is an error to log, not a
/// panic that takes the service down.
#[tokio::test]
async fn a_taken_port_is_an_error_inside_the_services_runtime() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = loopback()
        .bind(addr)
        .start()
        .err()
        .expect("the port is taken");
    assert!(
        matches!(&err, pyrometer::StartError::Bind(a, e) if *a == addr && e.kind() == ErrorKind::AddrInUse),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "cannot listen on {addr}: Address already in use (os error 98); choose another \
             address with PYROMETER_ADDR"
        )
    );
    assert!(loopback().bind(addr).start_or_log().is_none());
}

fn bind_without_reuseaddr(addr: SocketAddr) -> std::io::Result<()> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(false)?;
    socket.bind(addr)
}
