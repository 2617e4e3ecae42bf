//! byosms: bring your own SMS provider. The domain, one adapter per provider, the stores behind
//! their ports, and the send and receive pipelines that the Lambdas, the local gateway and the
//! CLI share.

pub mod config;
pub mod deps;
pub mod domain;
pub mod pipeline;
pub mod providers;
pub mod stores;
pub mod telemetry;
pub mod webhook;

pub use config::Settings;
pub use deps::Deps;
