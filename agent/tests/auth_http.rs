//! The token check and the method check of the agent's own server, over real HTTP on loopback.

mod common;

use base64::Engine;
use common::{expect_error, loopback, start};

/// RFC 9110 (section 11.1): the scheme's name is case-insensitive.
#[tokio::test]
async fn the_authorization_scheme_is_case_insensitive() {
    let (_agent, base) = start(loopback().token("s3cret"));
    let url = format!("{base}/debug/pprof/");
    let client = reqwest::Client::new();
    let basic = base64::engine::general_purpose::STANDARD.encode("pprof:s3cret");
    for value in [
        "Bearer s3cret".to_string(),
        "bearer s3cret".to_string(),
        "BEARER s3cret".to_string(),
        format!("Basic {basic}"),
        format!("basic {basic}"),
        format!("BASIC {basic}"),
    ] {
        let response = client
            .get(&url)
            .header("authorization", &value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{value}");
    }
    for value in ["bearer S3CRET", "Token s3cret", "bearers3cret"] {
        let response = client
            .get(&url)
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        let body = expect_error(response, 401).await;
        assert!(body.contains("Authorization: Bearer"), "{value}: {body}");
    }
}

#[tokio::test]
async fn only_get_and_head_are_answered() {
    let (_agent, base) = start(loopback());
    let client = reqwest::Client::new();
    let head = client
        .head(format!("{base}/debug/pprof/"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let post = client
        .post(format!("{base}/debug/pprof/profile"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    let body = expect_error(post, 405).await;
    assert_eq!(
        body,
        "/debug/pprof/profile answers GET and HEAD, not POST\n"
    );
    // An unknown path is a 404 whatever the method.
    let body = expect_error(
        client
            .delete(format!("{base}/debug/pprof/nothing-here"))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    assert!(body.contains("no such endpoint"), "{body}");
}
