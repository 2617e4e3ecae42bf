//! An in-memory stand-in for DynamoDB and Secrets Manager, for the benchmarks only: the AWS JSON
//! protocol (`X-Amz-Target`) for exactly the operations, key shapes and expressions byosms'
//! stores, the reference echo and the Python peer use, answered in microseconds.
//!
//! Why not moto, as the test suite uses: moto answers one request in about 5 ms of Python, its
//! backends are not thread-safe (concurrent writes answer 500), `TransactWriteItems` deep-copies
//! whole tables and `Query` sorts every item of a table. The warm and fan-out benchmarks would
//! measure that: a 1,000-message send is about 5,000 store calls, 25 s on moto. DynamoDB answers
//! each in single-digit milliseconds, in parallel. This stand-in answers in microseconds, so
//! what the figures show is the functions' own time; `--moto` runs the same benchmarks on moto.
//!
//! What it keeps of DynamoDB: items by hash and range key (both strings, as in byosms' tables),
//! condition expressions on puts, deletes and transaction items, all-or-nothing transactions
//! with per-item cancellation reasons, queries on a partition with `begins_with`, both
//! directions. What it refuses, loudly (a `ValidationException` naming it): any expression,
//! operation or key type it does not implement, so that a change in the stores shows up here as
//! an error, never as a silently different answer. Time to live, streams and paging are not
//! kept (no benchmark reaches them).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

type Item = Map<String, Value>;

/// The running stand-in: plain HTTP on loopback at `addr` (for seeding and tests), and `app`,
/// the same accounts, for the benchmarks' TLS endpoint to serve.
pub struct AwsStandIn {
    pub addr: SocketAddr,
    pub app: axum::Router,
    accounts: Arc<Mutex<Accounts>>,
    task: tokio::task::JoinHandle<()>,
}

impl AwsStandIn {
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accounts = Arc::new(Mutex::new(Accounts::default()));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(accounts.clone());
        let served = app.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, served).await;
        });
        Ok(AwsStandIn {
            addr,
            app,
            accounts,
            task,
        })
    }

    /// How many calls of each operation (`DynamoDB_20120810.GetItem`, ...) it has answered.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        let accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        accounts.calls.clone()
    }
}

impl Drop for AwsStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Default)]
struct Accounts {
    tables: HashMap<String, Table>,
    secrets: HashMap<String, Secret>,
    /// Calls answered, by `X-Amz-Target`.
    calls: BTreeMap<String, u64>,
}

struct Table {
    description: Value,
    hash: String,
    range: Option<String>,
    items: BTreeMap<(String, String), Item>,
}

struct Secret {
    value: String,
    version: String,
}

/// An AWS error answer: its type (`__type`) and message, and any extra members.
struct ApiError {
    kind: &'static str,
    message: String,
    extra: Map<String, Value>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    error("ValidationException", message)
}

fn error(kind: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        kind,
        message: message.into(),
        extra: Map::new(),
    }
}

type Answer = Result<Value, ApiError>;

async fn handle(
    State(accounts): State<Arc<Mutex<Accounts>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (service, operation) = target.split_once('.').unwrap_or(("", ""));
    let dynamodb = service.starts_with("DynamoDB_");
    let answer = match serde_json::from_slice::<Value>(&body) {
        Err(e) => Err(invalid(format!("the body is not JSON: {e}"))),
        Ok(input) => {
            let mut accounts = accounts.lock().unwrap_or_else(|p| p.into_inner());
            *accounts.calls.entry(target.clone()).or_default() += 1;
            match (dynamodb, service) {
                (true, _) => dynamodb_operation(&mut accounts, operation, &input),
                (false, "secretsmanager") => secrets_operation(&mut accounts, operation, &input),
                _ => Err(invalid(format!("unknown X-Amz-Target {target:?}"))),
            }
        }
    };
    let content_type = if dynamodb {
        "application/x-amz-json-1.0"
    } else {
        "application/x-amz-json-1.1"
    };
    let (status, body) = match answer {
        Ok(output) => (StatusCode::OK, output),
        Err(err) => {
            let mut body = err.extra;
            let kind = if dynamodb {
                format!("com.amazonaws.dynamodb.v20120810#{}", err.kind)
            } else {
                err.kind.to_string()
            };
            body.insert("__type".into(), kind.into());
            body.insert("message".into(), err.message.clone().into());
            body.insert("Message".into(), err.message.into());
            (StatusCode::BAD_REQUEST, Value::Object(body))
        }
    };
    (
        status,
        [
            ("content-type", content_type),
            ("x-amzn-requestid", "stand-in"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn str_field<'a>(input: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    input[name]
        .as_str()
        .ok_or_else(|| invalid(format!("{name} is required")))
}

fn dynamodb_operation(accounts: &mut Accounts, operation: &str, input: &Value) -> Answer {
    match operation {
        "CreateTable" => create_table(accounts, input),
        "ListTables" if input.get("ExclusiveStartTableName").is_none() => {
            let mut names: Vec<&String> = accounts.tables.keys().collect();
            names.sort();
            names.truncate(input["Limit"].as_u64().unwrap_or(100) as usize);
            Ok(json!({"TableNames": names}))
        }
        "DescribeTable" => Ok(json!({"Table": table(accounts, input)?.description})),
        "UpdateTimeToLive" => {
            table(accounts, input)?;
            Ok(json!({"TimeToLiveSpecification": input["TimeToLiveSpecification"]}))
        }
        "GetItem" => {
            let table = table(accounts, input)?;
            let key = table.key_of(&input["Key"])?;
            Ok(match table.items.get(&key) {
                Some(item) => json!({"Item": item}),
                None => json!({}),
            })
        }
        "PutItem" => {
            let put = Write::put(accounts, input)?;
            single_write(accounts, put, input)
        }
        "DeleteItem" => {
            let delete = Write::delete(accounts, input)?;
            single_write(accounts, delete, input)
        }
        "TransactWriteItems" => transact_write_items(accounts, input),
        "Query" => query(accounts, input),
        "Scan" if input.get("FilterExpression").is_none() && input.get("Limit").is_none() => {
            let items: Vec<&Item> = table(accounts, input)?.items.values().collect();
            Ok(json!({"Items": items, "Count": items.len(), "ScannedCount": items.len()}))
        }
        other => Err(invalid(format!(
            "the stand-in does not implement DynamoDB {other}"
        ))),
    }
}

/// A `PutItem` or `DeleteItem`: its condition, then the write, answering the old item when
/// `ReturnValues` is `ALL_OLD`.
fn single_write(accounts: &mut Accounts, write: Write, input: &Value) -> Answer {
    let all_old = match input["ReturnValues"].as_str() {
        None | Some("NONE") => false,
        Some("ALL_OLD") => true,
        Some(other) => return Err(invalid(format!("unsupported ReturnValues {other}"))),
    };
    write
        .check(accounts)
        .map_err(|message| error("ConditionalCheckFailedException", message))?;
    match write.apply(accounts) {
        Some(old) if all_old => Ok(json!({"Attributes": old})),
        _ => Ok(json!({})),
    }
}

fn create_table(accounts: &mut Accounts, input: &Value) -> Answer {
    let name = str_field(input, "TableName")?.to_string();
    if accounts.tables.contains_key(&name) {
        return Err(error("ResourceInUseException", format!("{name} exists")));
    }
    let key = |kind: &str| {
        input["KeySchema"].as_array().and_then(|keys| {
            keys.iter()
                .find(|k| k["KeyType"] == kind)
                .and_then(|k| k["AttributeName"].as_str())
                .map(str::to_string)
        })
    };
    let hash = key("HASH").ok_or_else(|| invalid("KeySchema has no HASH key"))?;
    let description = json!({
        "TableName": name,
        "TableStatus": "ACTIVE",
        "KeySchema": input["KeySchema"],
        "AttributeDefinitions": input["AttributeDefinitions"],
        "TableArn": format!("arn:aws:dynamodb:us-east-1:000000000000:table/{name}"),
        "ItemCount": 0,
    });
    let table = Table {
        description: description.clone(),
        hash,
        range: key("RANGE"),
        items: BTreeMap::new(),
    };
    accounts.tables.insert(name, table);
    Ok(json!({"TableDescription": description}))
}

fn table<'a>(accounts: &'a Accounts, input: &Value) -> Result<&'a Table, ApiError> {
    let name = str_field(input, "TableName")?;
    accounts
        .tables
        .get(name)
        .ok_or_else(|| error("ResourceNotFoundException", format!("no table {name}")))
}

impl Table {
    /// A key attribute's string, within DynamoDB's size limit for it.
    fn string_key(&self, item: &Value, name: &str, limit: usize) -> Result<String, ApiError> {
        let value = item[name]["S"]
            .as_str()
            .ok_or_else(|| invalid(format!("key attribute {name} must be a string")))?;
        if value.is_empty() || value.len() > limit {
            return Err(invalid(format!(
                "key attribute {name} must be 1 to {limit} bytes"
            )));
        }
        Ok(value.to_string())
    }

    fn key_of(&self, item: &Value) -> Result<(String, String), ApiError> {
        let hash = self.string_key(item, &self.hash, 2048)?;
        let range = match &self.range {
            Some(range) => self.string_key(item, range, 1024)?,
            None => String::new(),
        };
        Ok((hash, range))
    }
}

/// One put, delete or condition check, with its condition, resolved against a table.
struct Write {
    table: String,
    key: (String, String),
    condition: Option<Condition>,
    values: Item,
    action: Action,
}

enum Action {
    Put(Item),
    Delete,
    /// A transaction's `ConditionCheck`: the condition only, nothing written.
    Check,
}

impl Write {
    fn put(accounts: &Accounts, op: &Value) -> Result<Write, ApiError> {
        let item = op["Item"]
            .as_object()
            .ok_or_else(|| invalid("Item is required"))?;
        Write::new(accounts, op, &op["Item"], Action::Put(item.clone()))
    }

    fn delete(accounts: &Accounts, op: &Value) -> Result<Write, ApiError> {
        Write::new(accounts, op, &op["Key"], Action::Delete)
    }

    fn condition_check(accounts: &Accounts, op: &Value) -> Result<Write, ApiError> {
        Write::new(accounts, op, &op["Key"], Action::Check)
    }

    fn new(
        accounts: &Accounts,
        op: &Value,
        keyed: &Value,
        action: Action,
    ) -> Result<Write, ApiError> {
        let table = table(accounts, op)?;
        let condition = op["ConditionExpression"]
            .as_str()
            .map(Condition::parse)
            .transpose()?;
        Ok(Write {
            table: str_field(op, "TableName")?.to_string(),
            key: table.key_of(keyed)?,
            condition,
            values: op["ExpressionAttributeValues"]
                .as_object()
                .cloned()
                .unwrap_or_default(),
            action,
        })
    }

    /// `Err` with DynamoDB's message when the condition does not hold for the stored item.
    fn check(&self, accounts: &Accounts) -> Result<(), String> {
        let stored = accounts.tables[&self.table].items.get(&self.key);
        match &self.condition {
            Some(condition) if !condition.holds(stored, &self.values) => {
                Err("The conditional request failed".into())
            }
            _ => Ok(()),
        }
    }

    /// Writes, answering the item it replaced or deleted.
    fn apply(self, accounts: &mut Accounts) -> Option<Item> {
        let items = &mut accounts.tables.get_mut(&self.table).expect("checked").items;
        match self.action {
            Action::Put(item) => items.insert(self.key, item),
            Action::Delete => items.remove(&self.key),
            Action::Check => None,
        }
    }
}

fn transact_write_items(accounts: &mut Accounts, input: &Value) -> Answer {
    let entries = input["TransactItems"]
        .as_array()
        .ok_or_else(|| invalid("TransactItems is required"))?;
    if entries.is_empty() || entries.len() > 100 {
        return Err(invalid("TransactItems holds 1 to 100 items"));
    }
    let mut writes = Vec::new();
    for entry in entries {
        let write = match (
            entry.get("Put"),
            entry.get("Delete"),
            entry.get("ConditionCheck"),
        ) {
            (Some(op), None, None) => Write::put(accounts, op)?,
            (None, Some(op), None) => Write::delete(accounts, op)?,
            (None, None, Some(op)) => Write::condition_check(accounts, op)?,
            _ => {
                return Err(invalid(
                    "each TransactItems entry is one Put, Delete or ConditionCheck",
                ));
            }
        };
        if writes
            .iter()
            .any(|w: &Write| w.table == write.table && w.key == write.key)
        {
            return Err(invalid(
                "Transaction request cannot include multiple operations on one item",
            ));
        }
        writes.push(write);
    }
    let reasons: Vec<Value> = writes
        .iter()
        .map(|w| match w.check(accounts) {
            Ok(()) => json!({"Code": "None"}),
            Err(message) => json!({"Code": "ConditionalCheckFailed", "Message": message}),
        })
        .collect();
    if reasons.iter().any(|r| r["Code"] != "None") {
        let mut err = error(
            "TransactionCanceledException",
            "Transaction cancelled, please refer cancellation reasons for specific reasons",
        );
        err.extra
            .insert("CancellationReasons".into(), Value::Array(reasons));
        return Err(err);
    }
    for write in writes {
        let _replaced = write.apply(accounts);
    }
    Ok(json!({}))
}

fn query(accounts: &Accounts, input: &Value) -> Answer {
    let table = table(accounts, input)?;
    let expression = str_field(input, "KeyConditionExpression")?;
    let values = &input["ExpressionAttributeValues"];
    let value = |name: &str| {
        values[name]["S"]
            .as_str()
            .ok_or_else(|| invalid(format!("{name} must be a string value")))
    };
    // `H = :h` or `H = :h AND begins_with(R, :p)`: the two shapes byosms and the peer send.
    let (partition, prefix) = match expression.split_once(" AND ") {
        None => (expression, None),
        Some((partition, range)) => (partition, Some(range)),
    };
    let partition_value = match partition.split_whitespace().collect::<Vec<_>>()[..] {
        [name, "=", placeholder] if name == table.hash => value(placeholder)?,
        _ => return Err(invalid(format!("unsupported key condition {expression:?}"))),
    };
    let prefix = match prefix {
        None => "",
        Some(range) => {
            let inner = range
                .trim()
                .strip_prefix("begins_with(")
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| invalid(format!("unsupported key condition {expression:?}")))?;
            match inner.split(',').map(str::trim).collect::<Vec<_>>()[..] {
                [name, placeholder] if Some(name) == table.range.as_deref() => value(placeholder)?,
                _ => return Err(invalid(format!("unsupported key condition {expression:?}"))),
            }
        }
    };
    let start = (partition_value.to_string(), prefix.to_string());
    let mut items: Vec<&Item> = table
        .items
        .range(start..)
        .take_while(|((hash, range), _)| hash == partition_value && range.starts_with(prefix))
        .map(|(_, item)| item)
        .collect();
    if input["ScanIndexForward"] == false {
        items.reverse();
    }
    if let Some(limit) = input["Limit"].as_u64() {
        items.truncate(limit as usize);
    }
    Ok(json!({"Items": items, "Count": items.len(), "ScannedCount": items.len()}))
}

/// A condition expression of the shapes the stores write: atoms joined by `AND` within `OR`.
#[derive(Debug)]
enum Condition {
    Any(Vec<Vec<Atom>>),
}

#[derive(Debug)]
enum Atom {
    Exists(String, bool),
    Compare(String, Comparison, String),
}

#[derive(Debug, Clone, Copy)]
enum Comparison {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Condition {
    fn parse(expression: &str) -> Result<Condition, ApiError> {
        let unsupported = || invalid(format!("unsupported condition {expression:?}"));
        let mut any = Vec::new();
        for alternative in expression.split(" OR ") {
            let mut all = Vec::new();
            for atom in alternative.split(" AND ") {
                let atom = atom.trim();
                let function = |name: &str| {
                    atom.strip_prefix(name)
                        .and_then(|a| a.strip_prefix('('))
                        .and_then(|a| a.strip_suffix(')'))
                        .map(|a| a.trim().to_string())
                };
                if let Some(name) = function("attribute_not_exists") {
                    all.push(Atom::Exists(name, false));
                } else if let Some(name) = function("attribute_exists") {
                    all.push(Atom::Exists(name, true));
                } else {
                    let [name, op, value] = atom.split_whitespace().collect::<Vec<_>>()[..] else {
                        return Err(unsupported());
                    };
                    let op = match op {
                        "=" => Comparison::Eq,
                        "<>" => Comparison::Ne,
                        "<" => Comparison::Lt,
                        "<=" => Comparison::Le,
                        ">" => Comparison::Gt,
                        ">=" => Comparison::Ge,
                        _ => return Err(unsupported()),
                    };
                    if !value.starts_with(':') || name.starts_with(['#', ':', '(']) {
                        return Err(unsupported());
                    }
                    all.push(Atom::Compare(name.into(), op, value.into()));
                }
            }
            any.push(all);
        }
        Ok(Condition::Any(any))
    }

    fn holds(&self, item: Option<&Item>, values: &Item) -> bool {
        let Condition::Any(any) = self;
        any.iter()
            .any(|all| all.iter().all(|atom| atom.holds(item, values)))
    }
}

impl Atom {
    fn holds(&self, item: Option<&Item>, values: &Item) -> bool {
        match self {
            Atom::Exists(name, exists) => item.is_some_and(|i| i.contains_key(name)) == *exists,
            Atom::Compare(name, op, placeholder) => {
                let (Some(left), Some(right)) =
                    (item.and_then(|i| i.get(name)), values.get(placeholder))
                else {
                    return false;
                };
                compare(left, right).is_some_and(|order| match op {
                    Comparison::Eq => order.is_eq(),
                    Comparison::Ne => order.is_ne(),
                    Comparison::Lt => order.is_lt(),
                    Comparison::Le => order.is_le(),
                    Comparison::Gt => order.is_gt(),
                    Comparison::Ge => order.is_ge(),
                })
            }
        }
    }
}

/// DynamoDB's order of two attribute values of one scalar type; `None` across types.
fn compare(left: &Value, right: &Value) -> Option<std::cmp::Ordering> {
    if let (Some(l), Some(r)) = (left["N"].as_str(), right["N"].as_str()) {
        return match (l.parse::<i128>(), r.parse::<i128>()) {
            (Ok(l), Ok(r)) => Some(l.cmp(&r)),
            _ => l.parse::<f64>().ok()?.partial_cmp(&r.parse::<f64>().ok()?),
        };
    }
    if let (Some(l), Some(r)) = (left["S"].as_str(), right["S"].as_str()) {
        return Some(l.cmp(r));
    }
    (left == right).then_some(std::cmp::Ordering::Equal)
}

fn secrets_operation(accounts: &mut Accounts, operation: &str, input: &Value) -> Answer {
    let not_found = |name: &str| {
        error(
            "ResourceNotFoundException",
            format!("Secrets Manager can't find the specified secret {name}"),
        )
    };
    let arn = |name: &str| format!("arn:aws:secretsmanager:us-east-1:000000000000:secret:{name}");
    match operation {
        "CreateSecret" => {
            let name = str_field(input, "Name")?;
            if accounts.secrets.contains_key(name) {
                return Err(error(
                    "ResourceExistsException",
                    format!("the secret {name} already exists"),
                ));
            }
            let secret = Secret {
                value: str_field(input, "SecretString")?.to_string(),
                version: uuid::Uuid::new_v4().to_string(),
            };
            let answer = json!({"ARN": arn(name), "Name": name, "VersionId": secret.version});
            accounts.secrets.insert(name.to_string(), secret);
            Ok(answer)
        }
        "PutSecretValue" => {
            let name = str_field(input, "SecretId")?;
            let value = str_field(input, "SecretString")?.to_string();
            let secret = accounts
                .secrets
                .get_mut(name)
                .ok_or_else(|| not_found(name))?;
            *secret = Secret {
                value,
                version: uuid::Uuid::new_v4().to_string(),
            };
            Ok(json!({"ARN": arn(name), "Name": name, "VersionId": secret.version}))
        }
        "GetSecretValue" => {
            let name = str_field(input, "SecretId")?;
            let secret = accounts.secrets.get(name).ok_or_else(|| not_found(name))?;
            Ok(json!({
                "ARN": arn(name),
                "Name": name,
                "VersionId": secret.version,
                "SecretString": secret.value,
                "VersionStages": ["AWSCURRENT"],
                "CreatedDate": 1_700_000_000.0,
            }))
        }
        "DeleteSecret" => {
            let name = str_field(input, "SecretId")?;
            accounts
                .secrets
                .remove(name)
                .ok_or_else(|| not_found(name))?;
            Ok(json!({"ARN": arn(name), "Name": name, "DeletionDate": 1_700_000_000.0}))
        }
        other => Err(invalid(format!(
            "the stand-in does not implement Secrets Manager {other}"
        ))),
    }
}
