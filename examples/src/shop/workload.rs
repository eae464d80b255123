//! The traffic each route gets: request paths that name existing rows, spread over the data.
//!
//! Seed values are functions of row ids (see `seed`), so paths are built without asking the
//! database, and every request hits a real row.

use super::fixes::Problem;
use super::seed::{order_reference, SeedSize};

/// Orders per export request.
pub const EXPORT_ORDERS: u32 = 200;
/// Orders per list request.
pub const LIST_ORDERS: u32 = 50;

/// The route template of a problem's route, as `http.route` names it.
pub fn route(problem: Problem) -> &'static str {
    match problem {
        Problem::NPlusOne => "/orders",
        Problem::Unindexed => "/orders/lookup",
        Problem::HotAlloc => "/orders/export",
        Problem::ConnPerRequest => "/customers/{id}",
        Problem::SequentialCalls => "/orders/{id}/quote",
        Problem::NoTimeout => "/orders/{id}/payment",
        Problem::NoCache => "/catalog",
    }
}

/// A request path for the route, for a row drawn with `rng`.
pub fn path(problem: Problem, size: SeedSize, rng: &mut fastrand::Rng) -> String {
    let order = rng.u32(1..=size.orders.max(1));
    match problem {
        Problem::NPlusOne => format!(
            "/orders?before={}&limit={LIST_ORDERS}",
            order.max(LIST_ORDERS + 1)
        ),
        Problem::Unindexed => format!("/orders/lookup?reference={}", order_reference(order)),
        Problem::HotAlloc => format!(
            "/orders/export?from={}&limit={EXPORT_ORDERS}",
            order.min(size.orders.saturating_sub(EXPORT_ORDERS).max(1))
        ),
        Problem::ConnPerRequest => format!("/customers/{}", rng.u32(1..=size.customers.max(1))),
        Problem::SequentialCalls => format!("/orders/{order}/quote"),
        Problem::NoTimeout => format!("/orders/{order}/payment"),
        Problem::NoCache => "/catalog".to_string(),
    }
}

/// A path to show people (for the index page).
pub fn example_path(problem: Problem) -> String {
    let size = SeedSize {
        customers: 42,
        orders: 4242,
        products: 1,
    };
    path(problem, size, &mut fastrand::Rng::with_seed(7))
}
