//! The database: where connections come from, and the span and count of every query.
//!
//! A connection comes from a shared pool, or (the planted "connection per request" problem) is
//! opened for the request and closed after it. With sqlx's SQLite driver opening one means
//! starting a worker thread, opening the file and running the connection pragmas, which is the same
//! kind of cost a network database's handshake is.
//!
//! Every query runs through [`run`], which wraps it in a span named with OpenTelemetry's database
//! fields (`db.system.name`, `db.operation.name`, `db.query.text`; sqlx itself emits only events)
//! and counts it for the current request, so N+1 patterns show as a number (the `x-db-queries`
//! response header, see `telemetry`) and in span profiles.

use std::cell::Cell;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Sqlite, SqliteConnection, SqlitePool};
use tracing::Instrument;

tokio::task_local! {
    /// Queries run by the current request; set up per request by `telemetry`.
    static QUERIES: Cell<u32>;
}

/// Runs `future` with a fresh per-request query count, and returns its output and the count.
pub async fn count_queries<F: Future>(future: F) -> (F::Output, u32) {
    QUERIES
        .scope(Cell::new(0), async move {
            let output = future.await;
            (output, QUERIES.with(Cell::get))
        })
        .await
}

/// Runs one query inside a database span, counting it for the current request. `query` receives
/// the SQL text, so the text in the span is the text that runs.
pub async fn run<T, F, Fut>(sql: &'static str, query: F) -> Result<T, sqlx::Error>
where
    F: FnOnce(&'static str) -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    // Outside a request (seeding, admin DDL) there is nothing to count.
    let _ = QUERIES.try_with(|count| count.set(count.get() + 1));
    let operation = sql.split_whitespace().next().unwrap_or("QUERY");
    let span = tracing::info_span!(
        "db.query",
        db.system.name = "sqlite",
        db.operation.name = operation,
        db.query.text = sql,
    );
    query(sql).instrument(span).await
}

/// The shop's database.
#[derive(Debug)]
pub struct Db {
    pool: SqlitePool,
    options: SqliteConnectOptions,
    opened: AtomicU64,
}

/// A connection for one request, from the pool or opened for it.
pub enum Conn {
    Pooled(PoolConnection<Sqlite>),
    Fresh(SqliteConnection),
}

impl Deref for Conn {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match self {
            Conn::Pooled(conn) => conn,
            Conn::Fresh(conn) => conn,
        }
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            Conn::Pooled(conn) => conn,
            Conn::Fresh(conn) => conn,
        }
    }
}

impl Db {
    /// Opens (creating) the database file and a pool of `pool_size` connections.
    pub async fn open(path: &Path, pool_size: u32) -> Result<Db, sqlx::Error> {
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            // Map the file, so scans read memory rather than make a read() call per page: the CPU
            // profile then shows SQLite's work, not the kernel's copying.
            .pragma("mmap_size", "1073741824");
        let pool = SqlitePoolOptions::new()
            .max_connections(pool_size.max(1))
            .min_connections(0)
            .connect_with(options.clone())
            .await?;
        Ok(Db {
            pool,
            options,
            opened: AtomicU64::new(0),
        })
    }

    /// One connection outside the pool, for seeding and schema changes.
    pub async fn connect(&self) -> Result<SqliteConnection, sqlx::Error> {
        self.opened.fetch_add(1, Ordering::Relaxed);
        self.options
            .connect()
            .instrument(tracing::info_span!("db.connect", db.system.name = "sqlite"))
            .await
    }

    /// A connection for a request: a new one when `per_request` (the planted problem), else one
    /// from the pool.
    pub async fn acquire(&self, per_request: bool) -> Result<Conn, sqlx::Error> {
        if per_request {
            return Ok(Conn::Fresh(self.connect().await?));
        }
        let conn = self
            .pool
            .acquire()
            .instrument(tracing::info_span!(
                "db.pool.acquire",
                db.system.name = "sqlite"
            ))
            .await?;
        Ok(Conn::Pooled(conn))
    }

    /// How many connections were opened outside the pool since start.
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Runs a schema statement (the index fix) on a connection of its own.
    pub async fn execute_ddl(&self, sql: &'static str) -> Result<(), sqlx::Error> {
        let mut conn = self.connect().await?;
        run(sql, |sql| sqlx::query(sql).execute(&mut conn)).await?;
        // Pooled connections cache prepared statements; SQLite re-prepares them when the schema
        // changes, so they pick up (or drop) the index on their next run.
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
