//! An organisation's connection to its own provider account: non-secret settings, the access
//! grant, and (kept apart, never in the connection store) its secrets.

use super::Provider;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// Who may send through a connection: every user of the org, or the listed user ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AccessRepr", into = "AccessRepr")]
pub enum Access {
    All,
    Users(Vec<String>),
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum AccessRepr {
    Keyword(String),
    Users { users: Vec<String> },
}

impl TryFrom<AccessRepr> for Access {
    type Error = String;
    fn try_from(repr: AccessRepr) -> Result<Self, Self::Error> {
        match repr {
            AccessRepr::Keyword(k) if k == "all" => Ok(Access::All),
            AccessRepr::Keyword(k) => Err(format!(
                "access must be \"all\" or {{\"users\": [...]}}, not \"{k}\""
            )),
            AccessRepr::Users { users } => Ok(Access::Users(users)),
        }
    }
}

impl From<Access> for AccessRepr {
    fn from(access: Access) -> Self {
        match access {
            Access::All => AccessRepr::Keyword("all".into()),
            Access::Users(users) => AccessRepr::Users { users },
        }
    }
}

impl Access {
    pub fn allows(&self, user_id: &str) -> bool {
        match self {
            Access::All => true,
            Access::Users(users) => users.iter().any(|u| u == user_id),
        }
    }
}

/// What the connection store keeps. `settings` holds the provider's non-secret fields
/// (camelCase, as the admin gave them, after validation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub org_id: String,
    pub connection_id: String,
    pub provider: Provider,
    pub name: String,
    pub access: Access,
    pub enabled: bool,
    pub settings: Map<String, Value>,
    pub created_at: DateTime<Utc>,
}

impl Connection {
    /// A non-secret setting as a string; validation guarantees the required ones exist.
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings.get(name).and_then(Value::as_str)
    }
}

/// A connection's secret fields. `Debug` shows only the field names; the values leave this type
/// only through [`ConnectionSecrets::expose`] and [`ConnectionSecrets::to_json`] (for a secret store).
#[derive(Clone, Default)]
pub struct ConnectionSecrets(BTreeMap<String, SecretString>);

impl ConnectionSecrets {
    pub fn insert(&mut self, name: &str, value: String) {
        self.0.insert(name.to_string(), SecretString::from(value));
    }

    pub fn expose(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|s| s.expose_secret())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The JSON object a secret store persists.
    pub fn to_json(&self) -> String {
        let map: BTreeMap<&str, &str> = self
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose_secret()))
            .collect();
        serde_json::to_string(&map).expect("a map of strings always serializes")
    }

    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        let map: BTreeMap<String, String> = serde_json::from_str(json)?;
        let mut secrets = ConnectionSecrets::default();
        for (k, v) in map {
            secrets.insert(&k, v);
        }
        Ok(secrets)
    }
}

impl fmt::Debug for ConnectionSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "[REDACTED]")))
            .finish()
    }
}

/// One broken rule in an admin's connection input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub rule: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

/// Every broken rule at once, so an admin fixes a file in one go.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid connection: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ValidationErrors(pub Vec<FieldError>);

/// The provider's view of an admin's fields once checked: what may be stored in the clear and
/// what must go to the secret store.
#[derive(Debug, Default)]
pub struct ProviderFields {
    pub settings: Map<String, Value>,
    pub secrets: ConnectionSecrets,
}

/// The optional connection setting that paces sends: at most this many provider requests per
/// second from one invocation (for providers and sender types with a throughput limit, e.g. a
/// long code's 1 message per second). A number or a decimal string, `0.01` to `10000`.
pub const SEND_RATE_SETTING: &str = "sendRatePerSecond";
const MAX_SEND_RATE: f64 = 10_000.0;
const MIN_SEND_RATE: f64 = 0.01;

/// The rule of [`SEND_RATE_SETTING`]; stores the rate as its shortest decimal.
pub fn validate_send_rate(value: &str) -> Result<String, String> {
    let broken = || {
        format!("must be a number of messages per second from {MIN_SEND_RATE} to {MAX_SEND_RATE}")
    };
    let rate: f64 = value.trim().parse().map_err(|_| broken())?;
    if rate.is_finite() && (MIN_SEND_RATE..=MAX_SEND_RATE).contains(&rate) {
        Ok(rate.to_string())
    } else {
        Err(broken())
    }
}

impl Connection {
    /// The connection's send rate, when it has one.
    pub fn send_rate(&self) -> Option<f64> {
        self.setting(SEND_RATE_SETTING)?.parse().ok()
    }
}

/// A helper for adapters: reads the admin's fields, collecting every error, and refuses fields
/// the provider does not know (a typo in a field name must not silently drop a setting).
pub struct FieldReader<'a> {
    fields: &'a Map<String, Value>,
    errors: Vec<FieldError>,
    seen: Vec<&'static str>,
    out: ProviderFields,
}

impl<'a> FieldReader<'a> {
    pub fn new(fields: &'a Map<String, Value>) -> Self {
        FieldReader {
            fields,
            errors: Vec::new(),
            seen: Vec::new(),
            out: ProviderFields::default(),
        }
    }

    pub fn error(&mut self, field: &str, rule: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_string(),
            rule: rule.into(),
        });
    }

    /// A required string field; `None` (and an error) when missing, not a string, or empty.
    /// Settings are trimmed (a pasted trailing space is never meant); secrets are kept byte for
    /// byte, since a secret's spaces may be part of it.
    fn read(&mut self, field: &'static str, trim: bool) -> Option<String> {
        self.seen.push(field);
        match self.fields.get(field) {
            None | Some(Value::Null) => {
                self.error(field, "is required");
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                self.error(field, "must not be empty");
                None
            }
            Some(Value::String(s)) if trim => Some(s.trim().to_string()),
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.error(field, "must be a string");
                None
            }
        }
    }

    /// A required non-secret field, checked by `rule` (which returns the stored form or the
    /// broken rule).
    pub fn setting(
        &mut self,
        field: &'static str,
        rule: impl FnOnce(&str) -> Result<String, String>,
    ) -> Option<String> {
        let value = self.read(field, true)?;
        self.keep(field, value, rule, false)
    }

    /// An optional non-secret field: `default` is stored when the admin leaves it out (or gives
    /// `null`); a given value is checked by `rule` like any other.
    pub fn optional_setting(
        &mut self,
        field: &'static str,
        default: &str,
        rule: impl FnOnce(&str) -> Result<String, String>,
    ) -> Option<String> {
        if matches!(self.fields.get(field), None | Some(Value::Null)) {
            self.seen.push(field);
            self.out
                .settings
                .insert(field.to_string(), Value::String(default.to_string()));
            return Some(default.to_string());
        }
        self.setting(field, rule)
    }

    /// An optional non-secret field with no default: nothing is stored when it is left out.
    pub fn optional(
        &mut self,
        field: &'static str,
        rule: impl FnOnce(&str) -> Result<String, String>,
    ) -> Option<String> {
        if matches!(self.fields.get(field), None | Some(Value::Null)) {
            self.seen.push(field);
            return None;
        }
        self.setting(field, rule)
    }

    /// [`SEND_RATE_SETTING`], optional for every provider: a JSON number or a decimal string.
    pub fn send_rate(&mut self) -> Option<String> {
        match self.fields.get(SEND_RATE_SETTING) {
            Some(Value::Number(n)) => {
                self.seen.push(SEND_RATE_SETTING);
                let text = n.to_string();
                self.keep(SEND_RATE_SETTING, text, validate_send_rate, false)
            }
            _ => self.optional(SEND_RATE_SETTING, validate_send_rate),
        }
    }

    /// A required secret field, byte for byte as given.
    pub fn secret(
        &mut self,
        field: &'static str,
        rule: impl FnOnce(&str) -> Result<String, String>,
    ) -> Option<String> {
        let value = self.read(field, false)?;
        self.keep(field, value, rule, true)
    }

    fn keep(
        &mut self,
        field: &'static str,
        value: String,
        rule: impl FnOnce(&str) -> Result<String, String>,
        secret: bool,
    ) -> Option<String> {
        match rule(&value) {
            Ok(stored) => {
                if secret {
                    self.out.secrets.insert(field, stored.clone());
                } else {
                    self.out
                        .settings
                        .insert(field.to_string(), Value::String(stored.clone()));
                }
                Some(stored)
            }
            Err(broken) => {
                // A secret's value never goes into the message: only the rule.
                self.error(field, broken);
                None
            }
        }
    }

    pub fn finish(mut self) -> Result<ProviderFields, ValidationErrors> {
        let unknown: Vec<String> = self
            .fields
            .keys()
            .filter(|k| !self.seen.contains(&k.as_str()))
            .cloned()
            .collect();
        for field in unknown {
            self.error(&field, "is not a field of this provider");
        }
        if self.errors.is_empty() {
            Ok(self.out)
        } else {
            Err(ValidationErrors(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn access_parses_both_forms() {
        let all: Access = serde_json::from_value(json!("all")).unwrap();
        assert_eq!(all, Access::All);
        let users: Access = serde_json::from_value(json!({"users": ["UR_1"]})).unwrap();
        assert!(users.allows("UR_1"));
        assert!(!users.allows("UR_2"));
        assert!(serde_json::from_value::<Access>(json!("everyone")).is_err());
        assert_eq!(serde_json::to_value(Access::All).unwrap(), json!("all"));
    }

    #[test]
    fn secrets_debug_shows_names_only() {
        let mut s = ConnectionSecrets::default();
        s.insert("authToken", "0123456789abcdef0123456789abcdef".into());
        let shown = format!("{s:?}");
        assert!(shown.contains("authToken"));
        assert!(!shown.contains("0123456789abcdef"));
        let back = ConnectionSecrets::from_json(&s.to_json()).unwrap();
        assert_eq!(back.expose("authToken"), s.expose("authToken"));
    }

    #[test]
    fn field_reader_collects_every_error_and_unknown_fields() {
        let input = json!({"a": "x", "typo": "y", "n": 3})
            .as_object()
            .unwrap()
            .clone();
        let mut r = FieldReader::new(&input);
        r.setting("a", |v| Err(format!("must not be {v}")));
        r.setting("b", |v| Ok(v.into()));
        r.secret("n", |v| Ok(v.into()));
        let errs = r.finish().unwrap_err().0;
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["a", "b", "n", "typo"]);
    }

    #[test]
    fn optional_fields_take_their_default_and_secrets_keep_every_byte() {
        let input = json!({"region": "eu", "secret": "  spaced secret \n", "host": " h "})
            .as_object()
            .unwrap()
            .clone();
        let mut r = FieldReader::new(&input);
        r.optional_setting("region", "us", |v| Ok(v.into()));
        r.optional_setting("method", "md5hash", |v| Ok(v.into()));
        r.optional("from", |v| Ok(v.into()));
        r.setting("host", |v| Ok(v.into()));
        r.secret("secret", |v| Ok(v.into()));
        let out = r.finish().unwrap();
        assert_eq!(out.settings["region"], "eu");
        assert_eq!(out.settings["method"], "md5hash");
        assert!(!out.settings.contains_key("from"));
        assert_eq!(out.settings["host"], "h");
        assert_eq!(out.secrets.expose("secret"), Some("  spaced secret \n"));
    }
}
