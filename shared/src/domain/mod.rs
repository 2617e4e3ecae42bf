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
pub use message::{
    MAX_MESSAGE_ID_LEN, MessageRecord, PartStatus, SendCompletion, SendErrorCode, SendFailure,
    SendState, is_valid_message_id,
};
pub use provider::Provider;
pub use status::Status;
