//! The two pipelines every entry point calls.

pub mod receive;
pub mod send;
