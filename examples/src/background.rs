//! A shop and its agent on a thread and runtime of their own, alive until the process ends: what
//! tests need to drive one shared shop from their own (short-lived) runtimes.

use std::net::SocketAddr;

use pyrometer::AgentBuilder;

use crate::shop::{Shop, ShopConfig};

/// Where the background shop, its upstream and its agent listen.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub shop: SocketAddr,
    pub upstream: SocketAddr,
    pub agent: SocketAddr,
}

/// Starts the agent from `agent` and a shop from `config`, and returns once both listen.
///
/// # Panics
/// If either cannot start: this is for tests, where that is a failure to report.
pub fn start(agent: AgentBuilder, config: ShopConfig) -> Addresses {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async move {
            let agent = agent.start().expect("agent starts");
            let shop = Shop::start(config).await.expect("shop starts");
            tx.send(Addresses {
                shop: shop.addr(),
                upstream: shop.upstream_addr(),
                agent: agent.local_addr(),
            })
            .expect("addresses sent");
            std::future::pending::<()>().await;
            drop((shop, agent));
        });
    });
    rx.recv().expect("the shop started")
}
