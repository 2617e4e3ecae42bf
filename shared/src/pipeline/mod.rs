//! The two pipelines every entry point calls.

pub mod admin;
pub mod receive;
pub mod send;
