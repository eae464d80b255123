//! The admin routes: which problems are fixed, and switching one at run time.
//!
//! `GET /admin/fixes` lists the switches; `POST /admin/fixes/{name}?fixed=true|false` flips one. The
//! unindexed lookup's fix is a schema change, so its switch creates or drops the index.
//! `GET /admin/stats` shows counters that make some problems countable: connections opened outside
//! the pool.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use serde_json::{json, Map, Value};

use super::error::{Params, ShopError};
use super::fixes::Problem;
use super::seed::{DROP_REFERENCE_INDEX, REFERENCE_INDEX};
use super::AppState;

/// `GET /admin/fixes`: `{"n-plus-one": false, ...}`.
pub async fn list(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(describe(&state))
}

fn describe(state: &AppState) -> Value {
    let fixes: Map<String, Value> = Problem::ALL
        .iter()
        .map(|p| (p.name().to_string(), Value::Bool(state.fixes.is_fixed(*p))))
        .collect();
    Value::Object(fixes)
}

/// `GET /admin/stats`: `{"connections_opened": N}`.
pub async fn stats(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({ "connections_opened": state.db.connections_opened() }))
}

/// `POST /admin/fixes/{name}?fixed=true|false` (default true).
pub async fn set(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ShopError> {
    let problem: Problem = name
        .parse()
        .map_err(|e| ShopError::not_found(format!("{e}")))?;
    let fixed = Params::parse(q.as_deref(), &["fixed"])?
        .flag("fixed")?
        .unwrap_or(true);
    apply(&state, problem, fixed).await?;
    let was = state.fixes.set(problem, fixed);
    tracing::info!(problem = %problem, fixed, was, "fix switched");
    Ok(Json(
        json!({ "problem": problem.name(), "fixed": fixed, "was": was }),
    ))
}

/// Does what a switch needs beyond the flag itself.
pub async fn apply(state: &AppState, problem: Problem, fixed: bool) -> Result<(), sqlx::Error> {
    if problem == Problem::Unindexed {
        let ddl = if fixed {
            REFERENCE_INDEX
        } else {
            DROP_REFERENCE_INDEX
        };
        state.db.execute_ddl(ddl).await?;
    }
    Ok(())
}
