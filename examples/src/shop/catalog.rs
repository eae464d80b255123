//! The catalog: product list, categories and current bestsellers, recomputed on every request
//! (planted) or served from an in-process cache with a time to live (fixed).
//!
//! The catalog changes a few times a day, yet computing it takes three queries, one of which
//! aggregates the recent order lines, and serializing two thousand products. The fix keeps the
//! serialized body for a TTL, computes it once when it expires (other requests wait for that one
//! computation instead of stampeding the database), and tells clients and proxies how long they may
//! keep it with `Cache-Control: max-age`.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use serde::Serialize;
use sqlx::SqliteConnection;
use tokio::sync::Mutex;

use super::db::run;

/// How many recent orders the bestseller list looks at.
const RECENT_ORDERS: i64 = 5_000;

#[derive(Debug, Serialize)]
struct Category {
    name: String,
    products: i64,
    min_price_cents: i64,
    max_price_cents: i64,
}

#[derive(Debug, Serialize)]
struct Product {
    id: i64,
    name: String,
    category: String,
    price_cents: i64,
}

#[derive(Debug, Serialize)]
struct Bestseller {
    id: i64,
    name: String,
    units: i64,
}

#[derive(Debug, Serialize)]
struct Catalog {
    categories: Vec<Category>,
    bestsellers: Vec<Bestseller>,
    products: Vec<Product>,
}

/// Computes the catalog and serializes it to JSON.
pub async fn compute(conn: &mut SqliteConnection) -> Result<Bytes, sqlx::Error> {
    let categories = run(
        "SELECT category, count(*), min(price_cents), max(price_cents)
         FROM products GROUP BY category ORDER BY category",
        |sql| sqlx::query_as::<_, (String, i64, i64, i64)>(sql).fetch_all(&mut *conn),
    )
    .await?;
    let bestsellers = run(
        "SELECT p.id, p.name, sum(l.quantity) AS units
         FROM order_lines l JOIN products p ON p.id = l.product_id
         WHERE l.order_id > (SELECT max(id) FROM orders) - ?1
         GROUP BY p.id ORDER BY units DESC, p.id LIMIT 20",
        |sql| {
            sqlx::query_as::<_, (i64, String, i64)>(sql)
                .bind(RECENT_ORDERS)
                .fetch_all(&mut *conn)
        },
    )
    .await?;
    let products = run(
        "SELECT id, name, category, price_cents FROM products ORDER BY category, name",
        |sql| sqlx::query_as::<_, (i64, String, String, i64)>(sql).fetch_all(&mut *conn),
    )
    .await?;
    let catalog = Catalog {
        categories: categories
            .into_iter()
            .map(
                |(name, products, min_price_cents, max_price_cents)| Category {
                    name,
                    products,
                    min_price_cents,
                    max_price_cents,
                },
            )
            .collect(),
        bestsellers: bestsellers
            .into_iter()
            .map(|(id, name, units)| Bestseller { id, name, units })
            .collect(),
        products: products
            .into_iter()
            .map(|(id, name, category, price_cents)| Product {
                id,
                name,
                category,
                price_cents,
            })
            .collect(),
    };
    Ok(Bytes::from(
        serde_json::to_vec(&catalog).expect("the catalog serializes"),
    ))
}

/// The serialized catalog, kept for a time to live.
#[derive(Debug)]
pub struct CatalogCache {
    ttl: Duration,
    entry: Mutex<Option<(Instant, Bytes)>>,
}

impl CatalogCache {
    pub fn new(ttl: Duration) -> Self {
        CatalogCache {
            ttl,
            entry: Mutex::new(None),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The cached catalog, computed by `compute` when missing or expired. Holding the lock while
    /// computing makes concurrent misses wait for one computation.
    pub async fn get<F, Fut>(&self, compute: F) -> Result<Bytes, sqlx::Error>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Bytes, sqlx::Error>>,
    {
        let mut entry = self.entry.lock().await;
        if let Some((at, body)) = entry.as_ref() {
            if at.elapsed() < self.ttl {
                return Ok(body.clone());
            }
        }
        let body = compute().await?;
        *entry = Some((Instant::now(), body.clone()));
        Ok(body)
    }
}
