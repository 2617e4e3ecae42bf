//! The domain: what byosms knows independent of any provider, store or entry point.

pub mod connection;
pub mod event;
pub mod message;
pub mod phone;
pub mod provider;
pub mod segments;
pub mod status;

pub use connection::{
    Access, Connection, ConnectionSecrets, FieldError, FieldReader, ProviderFields,
    ValidationErrors,
};
pub use event::{Event, InboundEvent, StatusEvent};
pub use message::{MessageRecord, SendCompletion, SendFailure, SendState};
pub use provider::Provider;
pub use status::Status;
