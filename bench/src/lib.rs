//! The parts of `scripts/bench` that are more than a loop: a local Lambda Runtime API, a local TLS
//! endpoint in front of an in-memory AWS stand-in (or moto), a provider that answers in a fixed time, the deployment and events
//! the functions are started with, and the summaries.

pub mod aws_stand_in;
pub mod fixture;
pub mod mock_provider;
pub mod report;
pub mod runtime_api;
pub mod stats;
pub mod tls;
