//! Starting the agent: configuration (code, then the environment), the loopback-or-token rule, and
//! the standalone server.
//!
//! The server runs on its own thread with its own single-threaded tokio runtime. A service whose
//! runtime is saturated or blocked is exactly the one that needs profiling, so the agent must not
//! depend on it.

use std::fmt;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::net::{TcpListener, TcpSocket};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use crate::http::{self, HttpConfig, Shared};
use crate::server;
use crate::spans::DiagnoseConfig;

/// The address the standalone server binds unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:6060";

/// Entry point: `Agent::builder().start_or_log()`, or `.start()` to handle the error yourself.
pub struct Agent;

impl Agent {
    pub fn builder() -> AgentBuilder {
        AgentBuilder::default()
    }
}

/// Configures the agent. Values set in code are defaults that the environment overrides, so an
/// operator can change them without a rebuild: `PYROMETER_ADDR` (for example `127.0.0.1:6060`)
/// and `PYROMETER_TOKEN`.
#[derive(Debug, Clone, Default)]
pub struct AgentBuilder {
    addr: Option<SocketAddr>,
    token: Option<String>,
    max_seconds: Option<u64>,
    diagnose: DiagnoseConfig,
}

/// Why the agent did not start.
#[derive(Debug)]
pub enum StartError {
    /// A setting (named) has a value that cannot be used.
    Config {
        setting: &'static str,
        message: String,
    },
    /// The address is reachable from other hosts and no token is set.
    TokenRequired(SocketAddr),
    /// Binding the listener failed (address in use, no permission, not an address of this host).
    Bind(SocketAddr, std::io::Error),
    /// The server thread could not be started.
    Runtime(std::io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config { setting, message } => write!(f, "{setting}: {message}"),
            StartError::TokenRequired(addr) => write!(
                f,
                "refusing to serve profiles on {addr} without a token: anyone who can reach it \
                 could read this process's code paths. Set PYROMETER_TOKEN (or call .token(..)), \
                 or bind a loopback address such as 127.0.0.1:{}",
                addr.port()
            ),
            StartError::Bind(addr, e) => write!(
                f,
                "cannot listen on {addr}: {e}; choose another address with PYROMETER_ADDR"
            ),
            StartError::Runtime(e) => write!(f, "cannot start the profiler's server thread: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

impl AgentBuilder {
    /// The address of the standalone server (default `127.0.0.1:6060`; port 0 picks a free one).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }

    /// Requires this token on every request.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The longest window a request may ask for, in seconds (default 300).
    pub fn max_seconds(mut self, seconds: u64) -> Self {
        self.max_seconds = Some(seconds);
        self
    }

    /// Thresholds of the problems `/debug/pprof/diagnose` reports.
    pub fn diagnose(mut self, config: DiagnoseConfig) -> Self {
        self.diagnose = config;
        self
    }

    /// The endpoints as an axum 0.8 Router to merge into the service's own app (feature `axum`).
    /// The app may be reachable from anywhere, so a token is required; see
    /// [`AgentBuilder::router_without_token`].
    #[cfg(feature = "axum")]
    pub fn router(self) -> Result<axum::Router, StartError> {
        let (_, config) = self.resolve()?;
        if config.token.is_none() {
            return Err(StartError::Config {
                setting: "token",
                message: "a router merged into your app is reachable wherever the app is, so it \
                          needs a token: call .token(..) or set PYROMETER_TOKEN (use \
                          .router_without_token() only for an app that listens on loopback)"
                    .into(),
            });
        }
        Ok(http::router(config))
    }

    /// The endpoints as an axum 0.8 Router with no token check, for an app that only listens on
    /// loopback (feature `axum`).
    #[cfg(feature = "axum")]
    pub fn router_without_token(self) -> Result<axum::Router, StartError> {
        Ok(http::router(self.resolve()?.1))
    }

    /// Binds the listener and starts serving on a thread of the agent's own.
    ///
    /// Every way this can fail is a [`StartError`] whose `Display` is one line saying what to
    /// change; nothing is left running. A service that must not depend on its profiler should
    /// use [`AgentBuilder::start_or_log`] or log the error and carry on.
    pub fn start(self) -> Result<AgentHandle, StartError> {
        let (addr, config) = self.resolve()?;
        if !addr.ip().is_loopback() && config.token.is_none() {
            return Err(StartError::TokenRequired(addr));
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready, started) = mpsc::sync_channel(1);
        let shared = Shared::new(config);
        // The runtime is built, and dropped, on the server thread only: the caller is often inside
        // its own runtime, where dropping another one panics.
        let thread = std::thread::Builder::new()
            .name("pyrometer-http".into())
            .spawn(move || {
                let (runtime, listener) = match runtime_and_listener(addr) {
                    Ok((runtime, listener, local_addr)) => {
                        let _ = ready.send(Ok(local_addr));
                        (runtime, listener)
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    tokio::select! {
                        _ = server::serve(listener, shared) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime cancels requests in flight, which stops their profiles.
                drop(runtime);
            })
            .map_err(StartError::Runtime)?;
        let local_addr = match started.recv() {
            Ok(Ok(local_addr)) => local_addr,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(StartError::Runtime(std::io::Error::other(
                    "the server thread ended before it was ready",
                )));
            }
        };
        Ok(AgentHandle {
            local_addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Starts the agent, or logs in one line why the profiler is off and returns `None`: the
    /// service runs either way. The line goes to `tracing` at WARN when the process has a global
    /// subscriber, to standard error otherwise.
    pub fn start_or_log(self) -> Option<AgentHandle> {
        match self.start() {
            Ok(handle) => Some(handle),
            Err(e) => {
                if tracing::dispatcher::has_been_set() {
                    tracing::warn!("pyrometer: profiler off: {e}");
                } else {
                    eprintln!("pyrometer: profiler off: {e}");
                }
                None
            }
        }
    }

    /// Applies the environment over what was set in code.
    fn resolve(self) -> Result<(SocketAddr, HttpConfig), StartError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let addr = match env("PYROMETER_ADDR") {
            Some(raw) => raw.trim().parse().map_err(|_| StartError::Config {
                setting: "PYROMETER_ADDR",
                message: format!("{raw:?} is not an address like 127.0.0.1:6060 or [::1]:6060"),
            })?,
            None => self
                .addr
                .unwrap_or_else(|| DEFAULT_ADDR.parse().expect("valid default")),
        };
        let token = env("PYROMETER_TOKEN").or(self.token);
        if token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(StartError::Config {
                setting: "token",
                message: "the token is empty; give a non-empty secret or none".into(),
            });
        }
        let max_seconds = self.max_seconds.unwrap_or(http::DEFAULT_MAX_SECONDS);
        if max_seconds == 0 {
            return Err(StartError::Config {
                setting: "max_seconds",
                message: "must be at least 1".into(),
            });
        }
        Ok((
            addr,
            HttpConfig {
                token,
                max_seconds,
                diagnose: self.diagnose,
            },
        ))
    }
}

/// The server thread's runtime, and a listener registered with it.
fn runtime_and_listener(
    addr: SocketAddr,
) -> Result<(Runtime, TcpListener, SocketAddr), StartError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("pyrometer-blocking")
        .max_blocking_threads(2)
        .build()
        .map_err(StartError::Runtime)?;
    let listener = {
        let _runtime = runtime.enter();
        listen(addr).map_err(|e| StartError::Bind(addr, e))?
    };
    let local_addr = listener
        .local_addr()
        .map_err(|e| StartError::Bind(addr, e))?;
    Ok((runtime, listener, local_addr))
}

/// A listener on `addr` with `SO_REUSEADDR`, so that a restarted service can bind again while
/// connections of its previous instance linger in `TIME_WAIT`. (std sets it too on Unix; here
/// it is explicit, and tested.)
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// The running standalone server. Dropping it stops the server and any profile it is taking.
pub struct AgentHandle {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl AgentHandle {
    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for AgentHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
