//! The README's walkthrough, command by command, through the real `byosms` binary: a gateway and
//! a sandbox in the background, every other command against the same data directory.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_byosms");

/// A background `byosms` process, stopped when the test ends. Its stdout stays open while it
/// runs, so that what it prints after the lines read never meets a closed pipe.
struct Background {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Background {
    /// The value of the `export {name}=...` line the process printed.
    fn exported(&mut self, name: &str) -> String {
        let prefix = format!("export {name}=");
        let mut line = String::new();
        while self.stdout.read_line(&mut line).unwrap() > 0 {
            if let Some(value) = line.trim_end().strip_prefix(&prefix) {
                return value.to_string();
            }
            line.clear();
        }
        panic!("no `{prefix}...` line was printed");
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

fn start(data_dir: &Path, args: &[&str], addr: &str) -> Background {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .args(["--addr", addr])
        .env_remove("BYOSMS_PUBLIC_BASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "{args:?} did not start on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Background { child, stdout }
}

/// A one-shot command, Twilio's API at `twilio_api`.
fn byosms(data_dir: &Path, twilio_api: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("BYOSMS_TWILIO_API_URL", twilio_api)
        .env_remove("BYOSMS_PUBLIC_BASE_URL")
        .output()
        .unwrap()
}

fn ok(output: Output) -> String {
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    stdout
}

#[test]
fn the_readme_walkthrough() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join(".byosms");
    let (gateway_addr, sandbox_addr) = (free_addr(), free_addr());
    let _gateway = start(&data, &["serve"], &gateway_addr);
    let mut sandbox = start(&data, &["sandbox"], &sandbox_addr);
    // The line the sandbox prints is the one the README has the reader paste.
    let twilio_api = sandbox.exported("BYOSMS_TWILIO_API_URL");
    assert_eq!(twilio_api, format!("http://{sandbox_addr}/twilio"));
    let gateway = format!("http://{gateway_addr}");
    let conn_file = dir.path().join("conn.json");
    std::fs::write(
        &conn_file,
        r#"{"provider": "twilio", "name": "Surveys (Twilio)",
            "accountSid": "AC0123456789abcdef0123456789abcdef",
            "authToken": "f0e1d2c3b4a5968778695a4b3c2d1e0f",
            "from": "+14155550199", "access": "all"}"#,
    )
    .unwrap();
    let run = |args: &[&str]| byosms(&data, &twilio_api, args);

    let added = ok(run(&[
        "connection",
        "add",
        "--org",
        "ORG_1",
        "--file",
        conn_file.to_str().unwrap(),
        "--id",
        "conn_1",
        "--base-url",
        &gateway,
    ]));
    assert_eq!(added.lines().next(), Some("conn_1"));
    assert!(
        added.contains(&format!(
            "{gateway}/distribution-providers/v1/receive/distribution/message/twilio-sms/ORG_1"
        )),
        "{added}"
    );

    let sent = ok(run(&[
        "send",
        "--org",
        "ORG_1",
        "--to",
        "+14155550100",
        "--body",
        "Take our survey: https://x.y/z",
        "--message-id",
        "dist42-r1",
    ]));
    assert!(sent.starts_with("dist42-r1\taccepted\tSM"), "{sent}");

    let reply = ok(run(&[
        "simulate",
        "inbound",
        "--org",
        "ORG_1",
        "--from",
        "+14155550100",
        "--text",
        "5",
        "--gateway",
        &gateway,
    ]));
    assert!(reply.contains("HTTP 200"), "{reply}");
    let report = ok(run(&[
        "simulate",
        "status",
        "--org",
        "ORG_1",
        "--message-id",
        "dist42-r1",
        "--status",
        "delivered",
        "--gateway",
        &gateway,
    ]));
    assert!(report.contains("HTTP 200"), "{report}");

    let events: Vec<Value> = ok(run(&["events", "--org", "ORG_1"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        (
            events[0]["type"].as_str(),
            events[0]["text"].as_str(),
            events[0]["inReplyTo"].as_str()
        ),
        (Some("inbound"), Some("5"), Some("dist42-r1"))
    );
    assert_eq!(
        (events[1]["type"].as_str(), events[1]["status"].as_str()),
        (Some("status"), Some("delivered"))
    );

    let record: Value = serde_json::from_str(&ok(run(&[
        "--json",
        "message",
        "show",
        "--org",
        "ORG_1",
        "--message-id",
        "dist42-r1",
    ])))
    .unwrap();
    assert_eq!(record["status"], "delivered");
    assert_eq!(record["sendState"], "accepted");

    // The same messageId again is not sent again.
    let again = ok(run(&[
        "send",
        "--org",
        "ORG_1",
        "--to",
        "+14155550100",
        "--body",
        "Take our survey: https://x.y/z",
        "--message-id",
        "dist42-r1",
    ]));
    assert!(again.contains("already sent"), "{again}");

    // Twilio's magic number for an unsubscribed recipient: the send fails, the exit code says so.
    let refused = run(&[
        "send",
        "--org",
        "ORG_1",
        "--to",
        "+15005550004",
        "--body",
        "hi",
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stdout).contains("opted_out"));

    let shown = ok(run(&[
        "connection",
        "show",
        "--org",
        "ORG_1",
        "--id",
        "conn_1",
    ]));
    assert!(
        shown.contains("authToken") && !shown.contains("f0e1d2c3b4a5968778695a4b3c2d1e0f"),
        "{shown}"
    );

    let urls: Value = serde_json::from_str(&ok(run(&[
        "--json",
        "webhook-urls",
        "--org",
        "ORG_1",
        "--base-url",
        "https://sms.example.com",
    ])))
    .unwrap();
    // Twilio's URLs ask Twilio to retry (connection overrides in the fragment).
    assert_eq!(
        urls[0]["status"],
        "https://sms.example.com/distribution-providers/v1/receive/distribution/status/twilio-sms/ORG_1#rc=5&rp=ct,rt,5xx"
    );

    ok(run(&[
        "connection",
        "remove",
        "--org",
        "ORG_1",
        "--id",
        "conn_1",
    ]));
    assert!(ok(run(&["connection", "list", "--org", "ORG_1"])).contains("no connections"));
}

#[test]
fn bad_input_is_refused_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join(".byosms");
    let file = dir.path().join("bad.json");
    std::fs::write(&file, r#"{"provider": "twilio", "name": "x", "accountSid": "AC1", "authToken": "topsecretvalue", "from": "+1"}"#).unwrap();
    let out = byosms(
        &data,
        "http://127.0.0.1:9",
        &[
            "connection",
            "add",
            "--org",
            "ORG_1",
            "--file",
            file.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("accountSid: must be AC followed by 32 hex digits"),
        "{err}"
    );
    assert!(err.contains("authToken: must be 32 hex digits"), "{err}");
    assert!(err.contains("from:"), "{err}");
    assert!(!err.contains("topsecretvalue"), "{err}");

    std::fs::write(&file, "{not json").unwrap();
    let out = byosms(
        &data,
        "http://127.0.0.1:9",
        &[
            "connection",
            "add",
            "--org",
            "ORG_1",
            "--file",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("not valid JSON")
    );

    let out = byosms(
        &data,
        "http://127.0.0.1:9",
        &["message", "show", "--org", "ORG_1", "--message-id", "nope"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("message nope does not exist for org ORG_1")
    );
}

#[test]
fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join(".byosms");
    ok(byosms(
        &data,
        "http://127.0.0.1:9",
        &["connection", "list", "--org", "ORG_1"],
    ));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("byosms.sqlite3")), 0o600);
}

/// The same commands on DynamoDB and Secrets Manager, through `--aws` against moto.
#[test]
fn every_command_works_with_aws() {
    let moto = std::env::var("BYOSMS_TEST_MOTO_URL").expect(
        "BYOSMS_TEST_MOTO_URL is not set: run the tests with scripts/test, which starts moto",
    );
    let suffix = format!("{}", std::process::id());
    let aws = |args: &[&str]| {
        Command::new(BIN)
            .arg("--aws")
            .args(args)
            .env("AWS_ENDPOINT_URL", &moto)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env(
                "BYOSMS_CONNECTIONS_TABLE",
                format!("cli-connections-{suffix}"),
            )
            .env("BYOSMS_MESSAGES_TABLE", format!("cli-messages-{suffix}"))
            .env("BYOSMS_SECRET_PREFIX", format!("cli-{suffix}/"))
            .env_remove("BYOSMS_PUBLIC_BASE_URL")
            .output()
            .unwrap()
    };
    ok(aws(&["create-tables"]));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("conn.json");
    std::fs::write(
        &file,
        r#"{"provider": "twilio", "name": "T", "accountSid": "AC0123456789abcdef0123456789abcdef",
            "authToken": "f0e1d2c3b4a5968778695a4b3c2d1e0f", "from": "+14155550199"}"#,
    )
    .unwrap();
    let added: Value = serde_json::from_str(&ok(aws(&[
        "--json",
        "connection",
        "add",
        "--org",
        "ORG_A",
        "--file",
        file.to_str().unwrap(),
    ])))
    .unwrap();
    let id = added["connectionId"].as_str().unwrap().to_string();
    assert!(id.starts_with("conn_"), "{added}");
    assert!(ok(aws(&["connection", "list", "--org", "ORG_A"])).contains(&id));
    let shown: Value = serde_json::from_str(&ok(aws(&[
        "connection",
        "show",
        "--org",
        "ORG_A",
        "--id",
        &id,
    ])))
    .unwrap();
    assert_eq!(shown["secrets"], serde_json::json!(["authToken"]));
    assert_eq!(ok(aws(&["events", "--org", "ORG_A"])), "");
    ok(aws(&[
        "connection",
        "remove",
        "--org",
        "ORG_A",
        "--id",
        &id,
    ]));
    let gone = aws(&["connection", "show", "--org", "ORG_A", "--id", &id]);
    assert!(!gone.status.success());
}
