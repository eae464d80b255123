//! Runnable services that embed the pyrometer agent; see `examples/`.
