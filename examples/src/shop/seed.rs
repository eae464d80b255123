//! The shop's schema and its seed data.
//!
//! The problems only show on tables of a realistic size, so the database is seeded at start with
//! tens of thousands of customers and hundreds of thousands of orders and order lines. The rows are
//! generated inside SQLite by recursive CTEs, in one transaction: no row crosses the Rust/SQLite
//! boundary, which seeds the default size in about a second. Values are deterministic functions of
//! the row id, so the load generator can name existing rows (and order references) without asking
//! the database.
//!
//! `orders.reference` deliberately has no index: that is the planted "unindexed column" problem;
//! [`REFERENCE_INDEX`] is its fix.

use sqlx::{Connection, SqliteConnection};

/// How many rows to seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedSize {
    pub customers: u32,
    pub orders: u32,
    pub products: u32,
}

impl Default for SeedSize {
    fn default() -> Self {
        SeedSize {
            customers: 20_000,
            orders: 200_000,
            products: 2_000,
        }
    }
}

impl SeedSize {
    /// Order lines per order vary from 1 to 5 (3 on average).
    pub fn approx_lines(&self) -> u64 {
        u64::from(self.orders) * 3
    }
}

/// The multiplier that scatters order references: odd, so `id * REF_MUL mod 2^40` is a bijection
/// and references are unique.
const REF_MUL: u64 = 2_654_435_761;

/// The external reference of an order, as customers quote it to support (`ORD-` and 10 hex digits).
pub fn order_reference(order_id: u32) -> String {
    format!("ORD-{:010X}", (u64::from(order_id) * REF_MUL) % (1 << 40))
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE customers (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        email TEXT NOT NULL,
        city TEXT NOT NULL)",
    "CREATE TABLE products (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        category TEXT NOT NULL,
        price_cents INTEGER NOT NULL)",
    "CREATE TABLE orders (
        id INTEGER PRIMARY KEY,
        customer_id INTEGER NOT NULL REFERENCES customers(id),
        reference TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at INTEGER NOT NULL)",
    "CREATE INDEX orders_customer ON orders(customer_id)",
    "CREATE TABLE order_lines (
        id INTEGER PRIMARY KEY,
        order_id INTEGER NOT NULL REFERENCES orders(id),
        product_id INTEGER NOT NULL REFERENCES products(id),
        quantity INTEGER NOT NULL,
        price_cents INTEGER NOT NULL)",
    "CREATE INDEX order_lines_order ON order_lines(order_id)",
];

/// The fix for the unindexed lookup.
pub const REFERENCE_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS orders_reference ON orders(reference)";
/// Plants the problem again.
pub const DROP_REFERENCE_INDEX: &str = "DROP INDEX IF EXISTS orders_reference";

const SEED_CUSTOMERS: &str = "
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
    INSERT INTO customers (id, name, email, city)
    SELECT i, 'Customer ' || i, 'customer' || i || '@example.com',
           CASE i % 6 WHEN 0 THEN 'Lisbon' WHEN 1 THEN 'Oslo' WHEN 2 THEN 'Lyon'
                      WHEN 3 THEN 'Graz' WHEN 4 THEN 'Turku' ELSE 'Porto' END
    FROM n";

const SEED_PRODUCTS: &str = "
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
    INSERT INTO products (id, name, category, price_cents)
    SELECT i, 'Product ' || i,
           CASE i % 8 WHEN 0 THEN 'books' WHEN 1 THEN 'garden' WHEN 2 THEN 'kitchen'
                      WHEN 3 THEN 'toys' WHEN 4 THEN 'tools' WHEN 5 THEN 'music'
                      WHEN 6 THEN 'sports' ELSE 'office' END,
           199 + (i * 7919) % 20000
    FROM n";

const SEED_ORDERS: &str = "
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
    INSERT INTO orders (id, customer_id, reference, status, created_at)
    SELECT i, 1 + (i * 7919) % ?2, printf('ORD-%010X', (i * 2654435761) % 1099511627776),
           CASE i % 4 WHEN 0 THEN 'placed' WHEN 1 THEN 'paid' WHEN 2 THEN 'shipped'
                      ELSE 'delivered' END,
           1700000000 + i * 60
    FROM n";

const SEED_LINES: &str = "
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1),
         k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j < 4)
    INSERT INTO order_lines (order_id, product_id, quantity, price_cents)
    SELECT i, 1 + (i * 13 + j * 101) % ?2, 1 + (i + j) % 4, 199 + ((i + j) * 7919) % 20000
    FROM n, k
    WHERE j < 1 + (i * 31) % 5
    ORDER BY i, j";

/// Creates the schema and fills it, in one transaction.
pub async fn seed(conn: &mut SqliteConnection, size: SeedSize) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    for statement in SCHEMA {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    sqlx::query(SEED_CUSTOMERS)
        .bind(size.customers)
        .execute(&mut *tx)
        .await?;
    sqlx::query(SEED_PRODUCTS)
        .bind(size.products)
        .execute(&mut *tx)
        .await?;
    sqlx::query(SEED_ORDERS)
        .bind(size.orders)
        .bind(size.customers)
        .execute(&mut *tx)
        .await?;
    sqlx::query(SEED_LINES)
        .bind(size.orders)
        .bind(size.products)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    sqlx::query("ANALYZE").execute(&mut *conn).await?;
    Ok(())
}
