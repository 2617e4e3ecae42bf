//! What the black-box tests share: deps on either store (the embedded SQLite file or DynamoDB and
//! Secrets Manager on moto), a Twilio connection, a strict mock Twilio API, Twilio signing, the
//! gateway on a free port, and the captured JSON logs.

use byosms::config::RetryPolicy;
use byosms::domain::Connection;
use byosms::pipeline::admin;
use byosms::{Deps, Settings};
use serde_json::json;
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
    aws_config::defaults(aws_config::BehaviorVersion::latest())
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
    let mut settings = Settings {
        public_base_url: Some("https://sms.example.test".parse().unwrap()),
        retry: RetryPolicy {
            max_attempts: 3,
            first_delay: Duration::from_millis(5),
        },
        ..Settings::default()
    };
    if let Some(api) = twilio_api {
        settings
            .api_urls
            .insert(byosms::domain::Provider::Twilio, api.parse().unwrap());
    }
    settings
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

pub async fn add_twilio(deps: &Deps, org: &str, id: &str, from: &str) -> Connection {
    let input = json!({
        "provider": "twilio",
        "name": "Twilio test",
        "accountSid": ACCOUNT_SID,
        "authToken": AUTH_TOKEN,
        "from": from,
        "access": {"users": ["UR_1"]},
    });
    admin::add_connection(deps, org, Some(id), &input, None)
        .await
        .expect("valid twilio connection")
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
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
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
