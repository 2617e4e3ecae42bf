//! What the black-box tests share: deps on either store (the embedded SQLite file or DynamoDB and
//! Secrets Manager on moto), any provider's example connection, its stand-in on a free port,
//! settings that point each provider's API at a mock or a stand-in, the gateway on a free port,
//! and the captured JSON logs. For the Twilio-only tests: a Twilio connection with known
//! credentials, a strict mock Twilio API, and Twilio signing.

use byosms::config::{RetryPolicy, api_url_variables};
use byosms::domain::{Connection, Event, Provider, Status};
use byosms::pipeline::admin;
use byosms::providers::{ProviderAdapter, Registry};
use byosms::{Deps, Settings};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub const ORG: &str = "ORG_1";
pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// Distinctive, so a search of logs and tables for it cannot miss.
pub const AUTH_TOKEN: &str = "5ec2e7f00d5ec2e7f00d5ec2e7f00d99";
pub const FROM: &str = "+14155550199";
pub const TO: &str = "+14155550100";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Aws,
}

pub const BACKENDS: [Backend; 2] = [Backend::Embedded, Backend::Aws];

/// The backends whose transactions stay isolated when several run at once, as DynamoDB's are
/// (serializable): the embedded store always; the AWS backend only when `scripts/test` points it
/// at the benchmarks' stand-in (`BYOSMS_TEST_AWS_ISOLATED=1`), not at moto. moto 5.2.5's
/// `transact_write_items` takes no lock: concurrent transactions interleave their condition
/// checks, and a cancelled one restores a snapshot of the table over the others' writes. Tests of
/// racing transactions use these; everything else runs on [`BACKENDS`].
pub fn isolated_backends() -> Vec<Backend> {
    let aws_isolated = std::env::var("BYOSMS_TEST_AWS_ISOLATED").is_ok_and(|v| v == "1");
    BACKENDS
        .into_iter()
        .filter(|b| *b == Backend::Embedded || aws_isolated)
        .collect()
}

/// Keeps a test's embedded data directory alive.
pub struct TestDeps {
    pub deps: Deps,
    pub _dir: Option<tempfile::TempDir>,
    pub tables: Option<(String, String)>,
}

impl std::ops::Deref for TestDeps {
    type Target = Deps;
    fn deref(&self) -> &Deps {
        &self.deps
    }
}

pub fn moto_url() -> String {
    std::env::var("BYOSMS_TEST_MOTO_URL").expect(
        "BYOSMS_TEST_MOTO_URL is not set: run the tests with scripts/test, which starts moto",
    )
}

pub async fn sdk_config() -> aws_config::SdkConfig {
    byosms::stores::aws_http::sdk_config_loader()
        .endpoint_url(moto_url())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .load()
        .await
}

/// The two tables the SAM template defines, under fresh names.
pub async fn create_tables(client: &aws_sdk_dynamodb::Client) -> (String, String) {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (connections, messages) = (
        format!("connections-{suffix}"),
        format!("messages-{suffix}"),
    );
    byosms::stores::dynamodb::create_tables(client, &connections, &messages)
        .await
        .expect("create the tables on moto");
    (connections, messages)
}

/// Settings for tests: Twilio's API at `twilio_api`, callbacks on a public test host, fast retries.
pub fn settings(twilio_api: Option<&str>) -> Settings {
    let api_urls: Vec<(Provider, String)> = twilio_api
        .map(|url| (Provider::Twilio, url.to_string()))
        .into_iter()
        .collect();
    settings_with_api_urls(&api_urls)
}

/// Settings for tests with each of these providers' APIs at its URL, set through the
/// `BYOSMS_*_API_URL` variables as a deployment sets them; callbacks on a public test host, fast
/// retries.
pub fn settings_with_api_urls(api_urls: &[(Provider, String)]) -> Settings {
    let variables: HashMap<String, String> = api_urls
        .iter()
        .flat_map(|(provider, url)| {
            api_url_variables(*provider)
                .into_iter()
                .map(|v| (v, url.clone()))
        })
        .collect();
    Settings {
        public_base_url: Some("https://sms.example.test".parse().unwrap()),
        retry: RetryPolicy {
            max_attempts: 3,
            first_delay: Duration::from_millis(5),
        },
        ..Settings::from_lookup(|name| variables.get(name).cloned()).expect("valid API URLs")
    }
}

/// Every adapter as a sandboxed deployment builds it (its example connection is valid there;
/// nothing is ever sent to these URLs).
pub fn registry() -> Registry {
    Registry::new(&Settings::sandboxed("http://127.0.0.1:9").expect("a valid base"))
}

/// The stand-ins of `adapters` on one free loopback port, each under its sandbox mount path, as
/// `byosms sandbox` serves them.
async fn serve_stand_ins<'a>(
    adapters: impl IntoIterator<Item = &'a dyn ProviderAdapter>,
) -> std::net::SocketAddr {
    let router = byosms_cli::sandbox::router(adapters);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(byosms_cli::sandbox::serve(listener, router));
    addr
}

/// `provider`'s stand-in on a free loopback port; returns its base URL.
pub async fn start_stand_in(provider: Provider) -> String {
    let registry = registry();
    let adapter = registry
        .get(provider)
        .unwrap_or_else(|| panic!("{provider} has no registered adapter"));
    let addr = serve_stand_ins([adapter]).await;
    byosms_cli::sandbox::base_url(addr, provider)
}

/// Test settings with every registered provider's API at its own stand-in (started here).
pub async fn settings_with_stand_ins() -> Settings {
    let mut api_urls = Vec::new();
    for adapter in registry().all() {
        let provider = adapter.provider();
        api_urls.push((provider, start_stand_in(provider).await));
    }
    settings_with_api_urls(&api_urls)
}

pub async fn deps(backend: Backend, mut settings: Settings) -> TestDeps {
    captured_logs();
    match backend {
        Backend::Embedded => {
            let dir = tempfile::tempdir().unwrap();
            TestDeps {
                deps: Deps::embedded(dir.path(), settings).unwrap(),
                _dir: Some(dir),
                tables: None,
            }
        }
        Backend::Aws => {
            let sdk = sdk_config().await;
            let (connections, messages) = create_tables(&aws_sdk_dynamodb::Client::new(&sdk)).await;
            settings.connections_table = connections.clone();
            settings.messages_table = messages.clone();
            settings.secret_prefix = format!("byosms-test/{}/", uuid::Uuid::new_v4().simple());
            TestDeps {
                deps: Deps::aws(&sdk, settings),
                _dir: None,
                tables: Some((connections, messages)),
            }
        }
    }
}

/// `provider`'s example connection (its adapter's `example_fields`), through the admin pipeline.
pub async fn add_connection(deps: &Deps, provider: Provider, org: &str, id: &str) -> Connection {
    add_connection_with(deps, provider, org, id, json!({})).await
}

/// `provider`'s example connection with `overrides` (provider fields, or name, access, enabled)
/// put over it.
pub async fn add_connection_with(
    deps: &Deps,
    provider: Provider,
    org: &str,
    id: &str,
    overrides: Value,
) -> Connection {
    let adapter = deps
        .registry
        .get(provider)
        .unwrap_or_else(|| panic!("{provider} has no registered adapter"));
    let mut input = adapter.example_fields();
    input.insert("provider".into(), json!(provider.as_str()));
    input.insert("name".into(), json!(format!("{provider} test")));
    if let Value::Object(overrides) = overrides {
        input.extend(overrides);
    }
    admin::add_connection(deps, org, Some(id), &Value::Object(input), None)
        .await
        .unwrap_or_else(|e| panic!("{provider} connection {id}: {e}"))
}

/// A Twilio connection with this suite's known credentials, usable by UR_1 only.
pub async fn add_twilio(deps: &Deps, org: &str, id: &str, from: &str) -> Connection {
    let overrides = json!({
        "name": "Twilio test",
        "accountSid": ACCOUNT_SID,
        "authToken": AUTH_TOKEN,
        "from": from,
        "access": {"users": ["UR_1"]},
    });
    add_connection_with(deps, Provider::Twilio, org, id, overrides).await
}

/// `X-Twilio-Signature` for a form POST to `url`.
pub fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    byosms::providers::twilio::signature(token, url, &owned)
}

pub fn form(params: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

pub fn twilio_messages_path() -> String {
    format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
}

pub fn basic_auth_header() -> String {
    use base64::Engine;
    let raw = format!("{ACCOUNT_SID}:{AUTH_TOKEN}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Twilio's 201 answer for a created message.
pub fn twilio_created(sid: &str, status: &str) -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(201).set_body_json(json!({
        "sid": sid,
        "status": status,
        "account_sid": ACCOUNT_SID,
        "num_segments": "1",
        "error_code": null,
        "error_message": null,
    }))
}

pub fn twilio_error(http: u16, code: u32, message: &str) -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(http).set_body_json(json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": http,
    }))
}

/// A Twilio Messages API request with exactly these form fields, in this order.
pub fn twilio_request_with(fields: &[(&str, &str)]) -> wiremock::MockBuilder {
    use wiremock::matchers::{body_string, method, path};
    wiremock::Mock::given(method("POST"))
        .and(path(twilio_messages_path()))
        .and(body_string(form(fields)))
}

/// Deps whose DynamoDB and Secrets Manager are a port nothing listens on.
pub async fn unreachable_aws_deps() -> Deps {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let sdk = byosms::stores::aws_http::sdk_config_loader()
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "x", "y", None, None, "test",
        ))
        .load()
        .await;
    Deps::aws(&sdk, settings(None))
}

/// The gateway on a free loopback port; returns its base URL.
pub async fn start_gateway(deps: Deps) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum_serve(listener, deps).await;
    });
    format!("http://{addr}")
}

async fn axum_serve(listener: tokio::net::TcpListener, deps: Deps) {
    let signed_base = deps.settings.public_base_url.clone();
    byosms_cli::gateway::serve(listener, deps, signed_base)
        .await
        .unwrap();
}

/// Every JSON log line any test wrote, through the Lambdas' own log format at debug level.
pub fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        byosms::telemetry::init_json_to(
            move || LogSink(sink.clone()),
            byosms::telemetry::EnvFilter::new("debug"),
        );
        logs
    })
    .clone()
}

pub struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The status events among `events`: (provider's word, our status, our message id).
pub fn statuses(events: &[Event]) -> Vec<(String, Status, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Status(s) => Some((s.provider_status.clone(), s.status, s.message_id.clone())),
            Event::Inbound(_) => None,
        })
        .collect()
}

/// Turns a stored connection off, as an admin would (for "disabled connection" cases).
pub async fn disable_connection(deps: &Deps, org_id: &str, connection_id: &str) {
    let mut off = deps
        .stores
        .connections
        .get_connection(org_id, connection_id)
        .await
        .unwrap()
        .expect("the connection exists");
    off.enabled = false;
    deps.stores.connections.put_connection(&off).await.unwrap();
}
