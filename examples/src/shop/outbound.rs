//! The shop's calls to the upstream, in their planted and fixed forms.
//!
//! A quote needs three independent answers (inventory, pricing, shipping). Made one after the
//! other, the request waits for the sum of three latencies; made concurrently with `tokio::join!`,
//! for the slowest one. The payment status comes from an upstream that sometimes stalls: without a
//! timeout the request waits as long as the stall lasts, which is what p99 shows; with a timeout
//! per attempt and a bounded retry with exponential backoff (safe because the call is an idempotent
//! GET), a stall costs one timeout and a retry.
//!
//! Every call runs in a client span with OpenTelemetry's HTTP fields (`http.request.method`,
//! `url.full`, `server.address`), so span profiles show where requests wait.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tracing::Instrument;

/// Why an upstream call failed.
#[derive(Debug)]
pub enum CallError {
    /// The upstream did not answer in time, after every attempt.
    TimedOut { attempts: u32 },
    /// The call failed otherwise (refused, bad status, bad body).
    Failed(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::TimedOut { attempts } => {
                write!(
                    f,
                    "the payments service did not answer in time ({attempts} attempts)"
                )
            }
            CallError::Failed(message) => write!(f, "upstream call failed: {message}"),
        }
    }
}

/// How the fixed payment call retries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The time one attempt may take.
    pub timeout: Duration,
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The wait before the second attempt; it doubles before each further one.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            timeout: Duration::from_millis(150),
            attempts: 3,
            backoff: Duration::from_millis(10),
        }
    }
}

/// A client of the upstream service.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: reqwest::Client,
    addr: SocketAddr,
    retry: RetryPolicy,
}

/// What the three quote calls returned.
#[derive(Debug, serde::Serialize)]
pub struct Quote {
    pub inventory: Value,
    pub pricing: Value,
    pub shipping: Value,
}

impl Upstream {
    pub fn new(addr: SocketAddr, retry: RetryPolicy) -> Result<Upstream, reqwest::Error> {
        // No timeout on the client: the planted call must be able to wait for as long as the
        // upstream stalls. The fixed call sets one per request.
        let client = reqwest::Client::builder().no_proxy().build()?;
        Ok(Upstream {
            client,
            addr,
            retry,
        })
    }

    /// One GET, in a client span; `timeout` of `None` waits for as long as the upstream takes.
    async fn get(&self, path: &str, timeout: Option<Duration>) -> Result<Value, reqwest::Error> {
        let url = format!("http://{}{path}", self.addr);
        let span = tracing::info_span!(
            "http.client",
            http.request.method = "GET",
            url.full = %url,
            server.address = %self.addr.ip(),
            server.port = self.addr.port(),
        );
        async {
            let mut request = self.client.get(&url);
            if let Some(timeout) = timeout {
                request = request.timeout(timeout);
            }
            request.send().await?.error_for_status()?.json().await
        }
        .instrument(span)
        .await
    }

    /// Inventory, pricing and shipping for an order: one after the other, or (`concurrent`) at once.
    pub async fn quote(&self, order: i64, concurrent: bool) -> Result<Quote, CallError> {
        let (inventory, pricing, shipping) = (
            format!("/inventory/{order}"),
            format!("/pricing/{order}"),
            format!("/shipping/{order}"),
        );
        let (inventory, pricing, shipping) = if concurrent {
            tokio::join!(
                self.get(&inventory, None),
                self.get(&pricing, None),
                self.get(&shipping, None)
            )
        } else {
            let inventory = self.get(&inventory, None).await;
            let pricing = self.get(&pricing, None).await;
            (inventory, pricing, self.get(&shipping, None).await)
        };
        let failed = |e: reqwest::Error| CallError::Failed(e.to_string());
        Ok(Quote {
            inventory: inventory.map_err(failed)?,
            pricing: pricing.map_err(failed)?,
            shipping: shipping.map_err(failed)?,
        })
    }

    /// The payment status of an order: waiting as long as it takes, or (`bounded`) with a timeout
    /// per attempt and a bounded retry with exponential backoff.
    pub async fn payment(&self, order: i64, bounded: bool) -> Result<Value, CallError> {
        let path = format!("/payments/{order}");
        if !bounded {
            return self
                .get(&path, None)
                .await
                .map_err(|e| CallError::Failed(e.to_string()));
        }
        let mut backoff = self.retry.backoff;
        for attempt in 1..=self.retry.attempts {
            match self.get(&path, Some(self.retry.timeout)).await {
                Ok(value) => return Ok(value),
                Err(e) if !e.is_timeout() => return Err(CallError::Failed(e.to_string())),
                Err(_) if attempt == self.retry.attempts => break,
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        }
        Err(CallError::TimedOut {
            attempts: self.retry.attempts,
        })
    }
}
