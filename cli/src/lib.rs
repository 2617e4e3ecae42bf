//! The `byosms` command: the local gateway and the admin and test commands around it.

pub mod commands;
pub mod gateway;
pub mod sandbox;
