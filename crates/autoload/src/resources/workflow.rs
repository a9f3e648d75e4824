//! `resource: workflow`: triggers, an optional input schema and an ordered list of tasks.
//!
//! The file is read into `Raw*` types (flat, so every field error keeps its line) and then
//! converted into the typed model, where each trigger and task kind is its own variant.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use compozy_core::Secret;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::common::{RetryPolicy, check_url};
use super::{Id, Invalid, Pos, Reference, ResourceKind, Slug, SlugDecl};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
const HTTP_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

#[derive(Clone, Debug, Serialize)]
pub struct Workflow {
    pub resource: ResourceKind,
    pub id: Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub triggers: Vec<Trigger>,
    /// JSON Schema of the run input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
    /// `input`, compiled once at load: every run start is checked against it.
    #[serde(skip)]
    pub input_schema: Option<InputSchema>,
    pub tasks: Vec<Task>,
}

/// A workflow's compiled input schema, shared by every clone of the registry.
#[derive(Clone)]
pub struct InputSchema(pub Arc<jsonschema::Validator>);

impl std::fmt::Debug for InputSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InputSchema")
    }
}

impl Workflow {
    pub fn webhooks(&self) -> impl Iterator<Item = &WebhookTrigger> {
        self.triggers.iter().filter_map(|t| match t {
            Trigger::Webhook(w) => Some(w),
            Trigger::Manual => None,
        })
    }
}

#[derive(Clone, Debug, Serialize)]
// A handful of triggers per workflow, built once per load: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Trigger {
    Webhook(WebhookTrigger),
    /// Runs started through the API or the CLI.
    Manual,
}

/// Receives `POST /api/v0/hooks/{slug}`. Everything the webhook component needs is checked
/// here, at load: secrets decode, filters compile, schemas compile, names are bounded labels.
#[derive(Clone, Debug, Serialize)]
pub struct WebhookTrigger {
    pub slug: Slug,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub verify: Verify,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedupe: Option<Dedupe>,
    pub events: Vec<WebhookEvent>,
    /// Largest accepted body in bytes; `webhooks.default_body_limit` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_limit: Option<u64>,
}

impl WebhookTrigger {
    /// The metric label and log field naming this webhook: `source`, else the slug.
    pub fn source(&self) -> &str {
        self.source.as_deref().unwrap_or(self.slug.as_str())
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyMethod {
    #[default]
    None,
    Hmac,
    Github,
    Stripe,
    /// Standard Webhooks (Svix): `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    #[serde(alias = "standard-webhooks")]
    Standard,
    Slack,
}

/// How an `hmac` signature header encodes the MAC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Hex,
    Base64,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    pub method: VerifyMethod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// More secrets accepted at the same time (key rotation); any one of them verifies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<Secret>,
    /// Signature header, for `hmac`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// `hmac` only: how the header encodes the MAC (default hex).
    #[serde(default)]
    pub encoding: Encoding,
    /// `hmac` only: text before the MAC in the header, e.g. `sha256=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Accepted clock skew, both ways, for timestamped signatures (default 5m).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<Duration>,
}

impl Verify {
    /// Every accepted secret: `secret` first, then `secrets`.
    pub fn all_secrets(&self) -> impl Iterator<Item = &Secret> {
        self.secret.iter().chain(self.secrets.iter()).filter(|s| !s.is_empty())
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Dedupe {
    /// `false` turns dedupe off for this webhook (it is on by default).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where the delivery ID is read: `body.<dot path>` (signed with the body) or
    /// `header.<name>` (unsigned: used only when no signed ID exists; see docs/webhooks.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// For verified deliveries without a signed ID, the ID is a hash of the signed bytes, so a
    /// replay of the same signed delivery is refused; `false` turns that fallback off.
    #[serde(default = "yes")]
    pub signed_hash: bool,
    /// How long a delivery ID is remembered; `webhooks.dedupe_ttl` when absent.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Serialize)]
pub struct WebhookEvent {
    /// A metric label value: bounded by the configuration, checked for charset and length.
    pub name: String,
    /// A CEL expression over `body` (alias `payload`) and `headers`; the first matching event wins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// A template producing the run input; the body itself when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
    /// JSON Schema the rendered input must satisfy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
    /// `filter` and `schema`, compiled once at load.
    #[serde(skip)]
    pub compiled: CompiledEvent,
}

/// The compiled forms of an event's filter and schema, shared by every clone of the registry.
#[derive(Clone, Default)]
pub struct CompiledEvent {
    pub filter: Option<Arc<cel::Program>>,
    pub schema: Option<Arc<jsonschema::Validator>>,
}

impl std::fmt::Debug for CompiledEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledEvent")
            .field("filter", &self.filter.is_some())
            .field("schema", &self.schema.is_some())
            .finish()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Task {
    pub id: Id,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub retry: RetryPolicy,
    #[serde(flatten)]
    pub action: Action,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Action {
    Tool(ToolAction),
    Http(HttpAction),
    Wait(WaitAction),
}

#[derive(Clone, Debug, Serialize)]
pub struct ToolAction {
    pub tool: Id,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HttpAction {
    pub method: String,
    /// May embed credentials, so it is kept as a secret.
    pub url: Secret,
    pub headers: BTreeMap<String, Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WaitAction {
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
}

// --- what the file holds -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWorkflow {
    resource: ResourceKind,
    id: Spanned<Id>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    triggers: Vec<RawTrigger>,
    #[serde(default)]
    input: Option<Spanned<serde_json::Value>>,
    tasks: Spanned<Vec<RawTask>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TriggerKind {
    Webhook,
    Manual,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    #[serde(rename = "type")]
    kind: Spanned<TriggerKind>,
    #[serde(default)]
    slug: Option<Spanned<Slug>>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    verify: Option<Verify>,
    #[serde(default)]
    dedupe: Option<Dedupe>,
    #[serde(default)]
    events: Option<Vec<RawEvent>>,
    #[serde(default)]
    body_limit: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    name: Spanned<String>,
    #[serde(default)]
    filter: Option<Spanned<String>>,
    #[serde(default)]
    input: Option<serde_json::Value>,
    #[serde(default)]
    schema: Option<Spanned<serde_json::Value>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TaskKind {
    Tool,
    Http,
    Wait,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    id: Spanned<Id>,
    #[serde(rename = "type")]
    kind: Spanned<TaskKind>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    #[serde(default)]
    retry: Option<RetryPolicy>,
    #[serde(default)]
    tool: Option<Spanned<Id>>,
    #[serde(default)]
    input: Option<serde_json::Value>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    url: Option<Secret>,
    #[serde(default)]
    headers: Option<BTreeMap<String, Secret>>,
    #[serde(default)]
    body: Option<serde_json::Value>,
    #[serde(default, with = "humantime_serde")]
    duration: Option<Duration>,
}

/// The typed workflow, and what the registry checks across files.
pub(crate) struct Converted {
    pub workflow: Workflow,
    pub id_pos: Pos,
    pub references: Vec<Reference>,
    pub slugs: Vec<SlugDecl>,
}

impl RawWorkflow {
    /// The `resource` value the file declares.
    pub(crate) fn declared(&self) -> ResourceKind {
        self.resource
    }

    pub(crate) fn convert(self) -> Result<Converted, Invalid> {
        let id_pos = Pos::from(self.id.referenced);
        if self.tasks.value.is_empty() {
            return Err(Invalid::new(self.tasks.referenced, "a workflow needs at least one task"));
        }
        if let Some(input) = &self.input
            && !input.value.is_object()
        {
            return Err(Invalid::new(input.referenced, "input must be a JSON Schema object"));
        }
        let input_schema = match &self.input {
            None => None,
            Some(s) => Some(InputSchema(Arc::new(
                jsonschema::validator_for(&s.value).map_err(|e| Invalid::new(s.referenced, format!("input: {e}")))?,
            ))),
        };
        let mut slugs = Vec::new();
        let mut triggers = Vec::with_capacity(self.triggers.len());
        for raw in self.triggers {
            if let Some(s) = &raw.slug {
                slugs.push(SlugDecl { slug: s.value.clone(), pos: s.referenced.into() });
            }
            triggers.push(raw.convert()?);
        }
        let mut references = Vec::new();
        let mut seen = HashSet::new();
        let mut tasks = Vec::with_capacity(self.tasks.value.len());
        for raw in self.tasks.value {
            if !seen.insert(raw.id.value.key()) {
                return Err(Invalid::new(raw.id.referenced, format!("task id `{}` is used twice", raw.id.value)));
            }
            if let Some(tool) = &raw.tool {
                let from = format!("task `{}`", raw.id.value);
                references.push(Reference {
                    kind: ResourceKind::Tool,
                    id: tool.value.clone(),
                    pos: tool.referenced.into(),
                    from,
                });
            }
            tasks.push(raw.convert()?);
        }
        let workflow = Workflow {
            resource: self.resource,
            id: self.id.value,
            description: self.description,
            triggers,
            input: self.input.map(|i| i.value),
            input_schema,
            tasks,
        };
        Ok(Converted { workflow, id_pos, references, slugs })
    }
}

impl RawTrigger {
    fn convert(self) -> Result<Trigger, Invalid> {
        let at = self.kind.referenced;
        match self.kind.value {
            TriggerKind::Manual => {
                let extra = self.slug.is_some()
                    || self.source.is_some()
                    || self.verify.is_some()
                    || self.dedupe.is_some()
                    || self.events.is_some();
                if extra {
                    return Err(Invalid::new(at, "a manual trigger takes no slug, source, verify, dedupe or events"));
                }
                Ok(Trigger::Manual)
            }
            TriggerKind::Webhook => {
                let slug = self.slug.ok_or_else(|| Invalid::new(at, "a webhook trigger needs a slug"))?.value;
                let verify = self.verify.unwrap_or_default();
                check_verify(&verify).map_err(|m| Invalid::new(at, m))?;
                if let Some(d) = &self.dedupe {
                    check_dedupe(d).map_err(|m| Invalid::new(at, m))?;
                }
                if let Some(source) = &self.source {
                    check_label("source", source).map_err(|m| Invalid::new(at, m))?;
                }
                if self.body_limit == Some(0) {
                    return Err(Invalid::new(at, "body_limit must be greater than 0"));
                }
                let events = convert_events(self.events.unwrap_or_default())?;
                Ok(Trigger::Webhook(WebhookTrigger {
                    slug,
                    source: self.source,
                    verify,
                    dedupe: self.dedupe,
                    events,
                    body_limit: self.body_limit,
                }))
            }
        }
    }
}

/// Names and sources become metric label values: short, printable, configured.
fn check_label(what: &str, v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'));
    if ok { Ok(()) } else { Err(format!("{what} `{v}` must be 1-64 characters of a-z A-Z 0-9 - _ . : /")) }
}

fn check_dedupe(d: &Dedupe) -> Result<(), String> {
    if d.ttl.is_some_and(|t| t.is_zero()) {
        return Err("dedupe.ttl must be greater than 0".into());
    }
    match d.key.as_deref() {
        None => Ok(()),
        Some(k) => match k.split_once('.') {
            Some(("body" | "header", rest)) if !rest.trim().is_empty() => Ok(()),
            _ => Err(format!("dedupe.key `{k}` must be `body.<path>` or `header.<name>`")),
        },
    }
}

fn convert_events(raw: Vec<RawEvent>) -> Result<Vec<WebhookEvent>, Invalid> {
    let mut seen = HashSet::new();
    let mut events = Vec::with_capacity(raw.len());
    for e in raw {
        let at = e.name.referenced;
        check_label("event name", &e.name.value).map_err(|m| Invalid::new(at, m))?;
        if !seen.insert(e.name.value.clone()) {
            return Err(Invalid::new(at, format!("event name `{}` is used twice", e.name.value)));
        }
        let mut compiled = CompiledEvent::default();
        if let Some(f) = &e.filter {
            let program = cel::Program::compile(&f.value)
                .map_err(|err| Invalid::new(f.referenced, format!("event `{}`: filter: {err}", e.name.value)))?;
            compiled.filter = Some(Arc::new(program));
        }
        if let Some(s) = &e.schema {
            let validator = jsonschema::validator_for(&s.value)
                .map_err(|err| Invalid::new(s.referenced, format!("event `{}`: schema: {err}", e.name.value)))?;
            compiled.schema = Some(Arc::new(validator));
        }
        events.push(WebhookEvent {
            name: e.name.value,
            filter: e.filter.map(|f| f.value),
            input: e.input,
            schema: e.schema.map(|s| s.value),
            compiled,
        });
    }
    Ok(events)
}

fn check_verify(v: &Verify) -> Result<(), String> {
    let has_secret = v.all_secrets().next().is_some();
    match v.method {
        VerifyMethod::None if has_secret => Err("verify.secret is set but verify.method is none".into()),
        VerifyMethod::None => Ok(()),
        _ if !has_secret => Err("verify.method needs a non-empty verify.secret (or verify.secrets)".into()),
        VerifyMethod::Hmac if v.header.as_deref().is_none_or(|h| h.trim().is_empty()) => {
            Err("verify.method hmac needs verify.header".into())
        }
        VerifyMethod::Standard => v.all_secrets().try_for_each(|s| check_standard_secret(s.expose())),
        _ => Ok(()),
    }?;
    let hmac_only = v.header.is_some() || v.prefix.is_some() || v.encoding != Encoding::Hex;
    if hmac_only && v.method != VerifyMethod::Hmac {
        return Err("verify.header, verify.prefix and verify.encoding apply to method hmac only".into());
    }
    if v.tolerance.is_some_and(|t| t.is_zero()) {
        return Err("verify.tolerance must be greater than 0".into());
    }
    Ok(())
}

/// Standard Webhooks secrets are `whsec_` + base64 of the key bytes.
fn check_standard_secret(s: &str) -> Result<(), String> {
    use base64::Engine as _;
    let b64 = s.strip_prefix("whsec_").unwrap_or(s);
    match base64::engine::general_purpose::STANDARD.decode(b64) {
        Ok(k) if !k.is_empty() => Ok(()),
        _ => Err("verify.secret for method standard must be `whsec_` followed by base64".into()),
    }
}

impl RawTask {
    fn convert(self) -> Result<Task, Invalid> {
        let at = self.kind.referenced;
        let invalid = |m: String| Invalid::new(at, format!("task `{}`: {m}", self.id.value));
        let timeout = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            return Err(invalid("timeout must be greater than 0 and at most 24h".into()));
        }
        let retry = self.retry.clone().unwrap_or_default();
        retry.check().map_err(invalid)?;
        self.unused_fields().map_err(invalid)?;
        let action = self.action().map_err(invalid)?;
        Ok(Task { id: self.id.value, timeout, retry, action })
    }

    /// Fields that belong to another task kind are errors, not silently ignored.
    fn unused_fields(&self) -> Result<(), String> {
        let kind = self.kind.value;
        let fields: [(&str, bool, TaskKind); 7] = [
            ("tool", self.tool.is_some(), TaskKind::Tool),
            ("input", self.input.is_some(), TaskKind::Tool),
            ("method", self.method.is_some(), TaskKind::Http),
            ("url", self.url.is_some(), TaskKind::Http),
            ("headers", self.headers.is_some(), TaskKind::Http),
            ("body", self.body.is_some(), TaskKind::Http),
            ("duration", self.duration.is_some(), TaskKind::Wait),
        ];
        match fields.iter().find(|(_, set, owner)| *set && *owner != kind) {
            Some((name, _, owner)) => Err(format!("`{name}` is only valid for {owner:?} tasks").to_lowercase()),
            None => Ok(()),
        }
    }

    fn action(&self) -> Result<Action, String> {
        match self.kind.value {
            TaskKind::Tool => {
                let tool = self.tool.as_ref().ok_or("a tool task needs `tool` (a tool id)")?.value.clone();
                Ok(Action::Tool(ToolAction { tool, input: self.input.clone() }))
            }
            TaskKind::Http => {
                let url = self.url.clone().ok_or("an http task needs `url`")?;
                check_url("url", url.expose())?;
                let method = self.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
                if !HTTP_METHODS.contains(&method.as_str()) {
                    return Err(format!("method must be one of {}", HTTP_METHODS.join(", ")));
                }
                let headers = self.headers.clone().unwrap_or_default();
                Ok(Action::Http(HttpAction { method, url, headers, body: self.body.clone() }))
            }
            TaskKind::Wait => {
                let duration = self.duration.ok_or("a wait task needs `duration`")?;
                if duration > MAX_TIMEOUT {
                    return Err("duration must be at most 24h".into());
                }
                Ok(Action::Wait(WaitAction { duration }))
            }
        }
    }
}
