//! Black-box tests of the bundle. Each pipeline test runs on both stores: the embedded SQLite
//! file and DynamoDB + Secrets Manager (the real AWS SDK against moto, started by scripts/test).

mod contract;
mod functions;
mod gateway;
mod idempotency;
mod kit_fixes;
mod lambda_events;
mod load;
mod provider_infobip;
mod provider_linkmobility;
mod provider_messagebird;
mod provider_messagemedia;
mod provider_sinch;
mod provider_vonage;
mod secrets;
mod send;
mod send_reliability;
mod stores;
mod support;
mod webhook_trust;
mod webhooks;
