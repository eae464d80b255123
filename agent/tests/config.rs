//! Starting the agent: the loopback-or-token rule and configuration from the environment. One test
//! function, because the environment is shared by every thread of the process.

use pyrometer::{Agent, StartError};

#[test]
fn configuration_from_code_and_environment() {
    // A non-loopback address without a token is refused, with a message that says what to do.
    let err = Agent::builder()
        .bind("0.0.0.0:0".parse().unwrap())
        .start()
        .err()
        .expect("refused");
    assert!(matches!(err, StartError::TokenRequired(_)));
    assert!(err.to_string().contains("Set PYROMETER_TOKEN"), "{err}");

    // With a token it starts.
    let agent = Agent::builder()
        .bind("0.0.0.0:0".parse().unwrap())
        .token("t0ken")
        .start()
        .expect("starts with a token");
    drop(agent);

    // An empty token is a mistake, not "no token".
    let err = Agent::builder().token("  ").start().err().expect("refused");
    assert!(err.to_string().contains("the token is empty"), "{err}");

    // The environment overrides the code, so operators can change it without a rebuild.
    std::env::set_var("PYROMETER_ADDR", "127.0.0.1:0");
    let agent = Agent::builder()
        .bind("127.0.0.1:1".parse().unwrap())
        .start()
        .expect("starts on the address from the environment");
    assert!(agent.local_addr().ip().is_loopback());
    assert_ne!(agent.local_addr().port(), 1);
    drop(agent);

    std::env::set_var("PYROMETER_ADDR", "0.0.0.0:0");
    let err = Agent::builder().start().err().expect("refused");
    assert!(matches!(err, StartError::TokenRequired(_)), "{err}");
    std::env::set_var("PYROMETER_TOKEN", "from-env");
    let agent = Agent::builder()
        .start()
        .expect("token from the environment");
    drop(agent);
    std::env::remove_var("PYROMETER_TOKEN");

    std::env::set_var("PYROMETER_ADDR", "localhost:6060");
    let err = Agent::builder().start().err().expect("refused");
    assert!(
        err.to_string()
            .starts_with("PYROMETER_ADDR: \"localhost:6060\" is not an address"),
        "{err}"
    );

    // A port in use is reported with the address and what to do.
    std::env::set_var("PYROMETER_ADDR", "127.0.0.1:0");
    let first = Agent::builder().start().unwrap();
    std::env::set_var("PYROMETER_ADDR", first.local_addr().to_string());
    let err = Agent::builder().start().err().expect("port in use");
    assert!(err.to_string().contains("cannot listen on"), "{err}");
    std::env::remove_var("PYROMETER_ADDR");
}
