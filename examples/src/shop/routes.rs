//! The shop's routes: one per planted problem, each reading its switch on every request.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use super::catalog;
use super::db::run;
use super::error::{parse_id, Params, ShopError};
use super::fixes::Problem;
use super::render::{self, ExportLine};
use super::AppState;

type Shared = State<Arc<AppState>>;

#[derive(Debug, Serialize, PartialEq)]
pub struct Line {
    pub product_id: i64,
    pub quantity: i64,
    pub price_cents: i64,
}

#[derive(Debug, Serialize)]
pub struct Order {
    pub id: i64,
    pub customer_id: i64,
    pub reference: String,
    pub status: String,
    pub lines: Vec<Line>,
}

/// `GET /orders?before=ID&limit=N`: the latest orders before an id, each with its lines.
/// Planted: one query for the orders, then one per order for its lines (N+1). Fixed: one query.
pub async fn list_orders(
    State(state): Shared,
    RawQuery(q): RawQuery,
) -> Result<Json<Vec<Order>>, ShopError> {
    let params = Params::parse(q.as_deref(), &["before", "limit"])?;
    let limit = params.int("limit", 50, 1..=200)?;
    let before = params.int("before", i64::MAX, 1..=i64::MAX)?;
    let mut conn = state.db.acquire(false).await?;
    if state.fixes.is_fixed(Problem::NPlusOne) {
        let rows = run(
            "SELECT o.id, o.customer_id, o.reference, o.status, l.product_id, l.quantity, l.price_cents
             FROM (SELECT id, customer_id, reference, status FROM orders
                   WHERE id < ?1 ORDER BY id DESC LIMIT ?2) o
             LEFT JOIN order_lines l ON l.order_id = o.id
             ORDER BY o.id DESC, l.id",
            |sql| {
                sqlx::query_as::<_, (i64, i64, String, String, Option<i64>, Option<i64>, Option<i64>)>(sql)
                    .bind(before)
                    .bind(limit)
                    .fetch_all(&mut *conn)
            },
        )
        .await?;
        let mut orders: Vec<Order> = Vec::with_capacity(limit as usize);
        for (id, customer_id, reference, status, product, quantity, price) in rows {
            if orders.last().is_none_or(|o| o.id != id) {
                orders.push(Order {
                    id,
                    customer_id,
                    reference,
                    status,
                    lines: Vec::new(),
                });
            }
            if let (Some(product_id), Some(quantity), Some(price_cents), Some(order)) =
                (product, quantity, price, orders.last_mut())
            {
                order.lines.push(Line {
                    product_id,
                    quantity,
                    price_cents,
                });
            }
        }
        return Ok(Json(orders));
    }
    let heads = run(
        "SELECT id, customer_id, reference, status FROM orders WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
        |sql| {
            sqlx::query_as::<_, (i64, i64, String, String)>(sql)
                .bind(before)
                .bind(limit)
                .fetch_all(&mut *conn)
        },
    )
    .await?;
    let mut orders = Vec::with_capacity(heads.len());
    for (id, customer_id, reference, status) in heads {
        let lines = run(
            "SELECT product_id, quantity, price_cents FROM order_lines WHERE order_id = ?1 ORDER BY id",
            |sql| sqlx::query_as::<_, (i64, i64, i64)>(sql).bind(id).fetch_all(&mut *conn),
        )
        .await?;
        orders.push(Order {
            id,
            customer_id,
            reference,
            status,
            lines: lines
                .into_iter()
                .map(|(product_id, quantity, price_cents)| Line {
                    product_id,
                    quantity,
                    price_cents,
                })
                .collect(),
        });
    }
    Ok(Json(orders))
}

/// `GET /orders/lookup?reference=ORD-...`: an order by the reference customers quote. The query
/// is the same planted and fixed; the fix is the index on `orders.reference`.
pub async fn lookup(State(state): Shared, RawQuery(q): RawQuery) -> Result<Json<Value>, ShopError> {
    let params = Params::parse(q.as_deref(), &["reference"])?;
    let reference = params.text("reference")?;
    let mut conn = state.db.acquire(false).await?;
    let row = run(
        "SELECT o.id, o.reference, o.status, o.created_at, c.id, c.name
         FROM orders o JOIN customers c ON c.id = o.customer_id
         WHERE o.reference = ?1",
        |sql| {
            sqlx::query_as::<_, (i64, String, String, i64, i64, String)>(sql)
                .bind(reference)
                .fetch_optional(&mut *conn)
        },
    )
    .await?
    .ok_or_else(|| ShopError::not_found(format!("no order with reference {reference:?}")))?;
    let (id, reference, status, created_at, customer_id, customer) = row;
    Ok(Json(json!({
        "id": id, "reference": reference, "status": status, "created_at": created_at,
        "customer": { "id": customer_id, "name": customer },
    })))
}

/// `GET /orders/export?from=ID&limit=N`: the lines of N orders from an id, as CSV.
pub async fn export(State(state): Shared, RawQuery(q): RawQuery) -> Result<Response, ShopError> {
    let params = Params::parse(q.as_deref(), &["from", "limit"])?;
    let from = params.int("from", 1, 1..=i64::MAX / 2)?;
    let limit = params.int("limit", 200, 1..=1000)?;
    let mut conn = state.db.acquire(false).await?;
    let rows = run(
        "SELECT o.id, o.reference, o.status, p.name, p.category, l.quantity, l.price_cents
         FROM orders o
         JOIN order_lines l ON l.order_id = o.id
         JOIN products p ON p.id = l.product_id
         WHERE o.id >= ?1 AND o.id < ?1 + ?2
         ORDER BY o.id, l.id",
        |sql| {
            sqlx::query_as::<_, (i64, String, String, String, String, i64, i64)>(sql)
                .bind(from)
                .bind(limit)
                .fetch_all(&mut *conn)
        },
    )
    .await?;
    drop(conn);
    let lines: Vec<ExportLine> = rows
        .into_iter()
        .map(
            |(order_id, reference, status, product, category, quantity, price_cents)| ExportLine {
                order_id,
                reference,
                status,
                product,
                category,
                quantity,
                price_cents,
            },
        )
        .collect();
    let body = if state.fixes.is_fixed(Problem::HotAlloc) {
        render::export_fixed(&lines)
    } else {
        render::export_planted(&lines)
    };
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response())
}

/// `GET /customers/{id}`: a customer with order count. Planted: a new connection per request.
pub async fn customer(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<Value>, ShopError> {
    let id = parse_id("customer id", &id)?;
    let per_request = !state.fixes.is_fixed(Problem::ConnPerRequest);
    let mut conn = state.db.acquire(per_request).await?;
    let row = run(
        "SELECT c.id, c.name, c.email, c.city, count(o.id), coalesce(max(o.created_at), 0)
         FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
         WHERE c.id = ?1 GROUP BY c.id",
        |sql| {
            sqlx::query_as::<_, (i64, String, String, String, i64, i64)>(sql)
                .bind(id)
                .fetch_optional(&mut *conn)
        },
    )
    .await?
    .ok_or_else(|| ShopError::not_found(format!("no customer with id {id}")))?;
    let (id, name, email, city, orders, last_order_at) = row;
    Ok(Json(json!({
        "id": id, "name": name, "email": email, "city": city,
        "orders": orders, "last_order_at": last_order_at,
    })))
}

/// Checks that an order exists, so upstream calls are made for real orders only.
async fn existing_order(state: &AppState, raw: &str) -> Result<i64, ShopError> {
    let id = parse_id("order id", raw)?;
    let mut conn = state.db.acquire(false).await?;
    run("SELECT id FROM orders WHERE id = ?1", |sql| {
        sqlx::query_scalar::<_, i64>(sql)
            .bind(id)
            .fetch_optional(&mut *conn)
    })
    .await?
    .ok_or_else(|| ShopError::not_found(format!("no order with id {id}")))
}

/// `GET /orders/{id}/quote`: inventory, pricing and shipping from the upstream. Planted: the three
/// calls in sequence. Fixed: concurrently.
pub async fn quote(State(state): Shared, Path(id): Path<String>) -> Result<Json<Value>, ShopError> {
    let id = existing_order(&state, &id).await?;
    let concurrent = state.fixes.is_fixed(Problem::SequentialCalls);
    let quote = state.upstream.quote(id, concurrent).await?;
    Ok(Json(json!({ "order": id, "quote": quote })))
}

/// `GET /orders/{id}/payment`: the payment status from the upstream. Planted: no timeout. Fixed:
/// a timeout per attempt and a bounded retry with backoff.
pub async fn payment(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<Value>, ShopError> {
    let id = existing_order(&state, &id).await?;
    let bounded = state.fixes.is_fixed(Problem::NoTimeout);
    let payment = state.upstream.payment(id, bounded).await?;
    Ok(Json(json!({ "order": id, "payment": payment })))
}

/// `GET /catalog`: products, categories and bestsellers. Planted: recomputed per request. Fixed:
/// cached for a TTL and sent with `Cache-Control: max-age`.
pub async fn catalog(State(state): Shared) -> Result<Response, ShopError> {
    let compute = || async {
        let mut conn = state.db.acquire(false).await?;
        catalog::compute(&mut conn).await
    };
    let (body, cache_control): (Bytes, HeaderValue) = if state.fixes.is_fixed(Problem::NoCache) {
        let body = state.catalog.get(compute).await?;
        let max_age = format!("public, max-age={}", state.catalog.ttl().as_secs());
        (
            body,
            HeaderValue::from_str(&max_age).unwrap_or(HeaderValue::from_static("no-cache")),
        )
    } else {
        (compute().await?, HeaderValue::from_static("no-cache"))
    };
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, cache_control),
        ],
        body,
    )
        .into_response())
}
