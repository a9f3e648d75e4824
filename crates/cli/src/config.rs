//! The engine's configuration: `compozy.yaml`, then `COMPOZY_*` environment variables, then
//! command-line flags, later overriding earlier.
//!
//! Every leaf key has an environment variable: `COMPOZY_` + the key's path in upper case with
//! `.` as `_` (`server.body_limit` → `COMPOZY_SERVER_BODY_LIMIT`). A value that fails to
//! deserialize is reported with its key, its value, where it came from and what was expected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use compozy_auth::AuthConfig;
use compozy_autoload::AutoloadConfig;
use compozy_console::ConsoleConfig;
use compozy_server::{MonitoringConfig, ServerConfig};
use compozy_store::{CacheConfig, StoreConfig};
use compozy_webhooks::WebhooksConfig;
use compozy_worker::{RetentionConfig, WorkerConfig};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub project: ProjectConfig,
    /// Where the embedded store and other local state live (`./.compozy` by default).
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub monitoring: MonitoringConfig,
    /// The store: PostgreSQL when `database.url` is set, else SQLite in `data_dir`.
    pub database: StoreConfig,
    /// The cache: Redis when `redis.url` is set, else in-process.
    pub redis: CacheConfig,
    pub autoload: AutoloadConfig,
    /// API keys, JWT issuers and rate limits (see docs/security.md).
    pub auth: AuthConfig,
    /// Durable workflow runs: queue, slots, leases (see crates/worker/README.md).
    pub worker: WorkerConfig,
    /// Inbound webhooks: slots, body limit, dedupe TTLs, payload retention (docs/webhooks.md).
    pub webhooks: WebhooksConfig,
    /// How long finished runs are kept, and how the pruner deletes them (docs/storage.md).
    pub retention: RetentionConfig,
    /// The operator console's pages (docs/console.md).
    pub console: ConsoleConfig,
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            project: ProjectConfig::default(),
            data_dir: PathBuf::from(".compozy"),
            server: ServerConfig::default(),
            monitoring: MonitoringConfig::default(),
            database: StoreConfig::default(),
            redis: CacheConfig::default(),
            autoload: AutoloadConfig::default(),
            auth: AuthConfig::default(),
            worker: WorkerConfig::default(),
            webhooks: WebhooksConfig::default(),
            retention: RetentionConfig::default(),
            console: ConsoleConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Config {
    /// The `autoload:` block with `worker.allowed_commands`, so that autoload (and `compozy
    /// validate`) and the worker judge tools by the same rules.
    pub fn autoload_config(&self) -> AutoloadConfig {
        AutoloadConfig { allowed_commands: self.worker.allowed_commands.clone(), ..self.autoload.clone() }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectConfig {
    /// The project's name: the `project` label of autoload metrics.
    pub name: String,
}

impl Default for ProjectConfig {
    fn default() -> Self {
        Self { name: "default".into() }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `compozy_server=debug,info`, ... (`RUST_LOG` wins).
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Auto }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when stderr is not a terminal, human-readable otherwise.
    #[default]
    Auto,
    Json,
    Pretty,
}

/// Where a value came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Env(String),
    Flag(&'static str),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(v) => write!(f, "environment variable {v}"),
            Source::Flag(n) => write!(f, "flag --{n}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("configuration file {path} is not valid YAML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("invalid configuration: `{key}` = {value} (from {origin}): {message}")]
    Value { key: String, value: String, origin: String, message: String },
    #[error(transparent)]
    Invalid(#[from] compozy_server::config::InvalidConfig),
    #[error("invalid configuration: {0}")]
    Console(String),
}

/// The inputs to a load: an optional file, the environment and flag overrides.
#[derive(Debug, Default)]
pub struct Sources {
    pub file: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    /// `(key path, flag name, value)` triples.
    pub flags: Vec<(&'static str, &'static str, Value)>,
}

/// A loaded configuration and the directory its project lives in.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// `COMPOZY_*` variables that name no key (likely typos), to warn about once logging is up.
    pub unknown_env: Vec<String>,
    pub root: PathBuf,
    pub file: Option<PathBuf>,
}

/// The file used when none is named: `./compozy.yaml` if it exists.
pub fn default_file() -> Option<PathBuf> {
    let p = PathBuf::from("compozy.yaml");
    p.is_file().then_some(p)
}

pub fn load(sources: Sources) -> Result<Loaded, ConfigError> {
    let mut origin: BTreeMap<String, Source> = BTreeMap::new();
    let mut tree = Value::Object(Map::new());
    if let Some(path) = &sources.file {
        tree = read_file(path)?;
        record_leaves(&tree, "", &Source::File(path.clone()), &mut origin);
    }
    let keys = leaf_keys();
    let defaults = serde_json::to_value(Config::default()).unwrap_or_default();
    let mut unknown_env = Vec::new();
    for (name, raw) in
        sources.env.iter().filter(|(n, _)| n.starts_with("COMPOZY_") && !RESERVED_ENV.contains(&n.as_str()))
    {
        let Some((key, default)) = keys.iter().find(|(k, _)| env_name(k) == *name) else {
            unknown_env.push(name.clone());
            continue;
        };
        set_path(&mut tree, key, env_value(raw, default), &defaults);
        origin.insert(key.clone(), Source::Env(name.clone()));
    }
    for (key, flag, value) in sources.flags {
        set_path(&mut tree, key, value, &defaults);
        origin.insert(key.to_string(), Source::Flag(flag));
    }
    let config = deserialize(tree, &origin)?;
    config.server.validate()?;
    config.monitoring.validate()?;
    config.console.validate().map_err(ConfigError::Console)?;
    if config.console.enabled && config.console.path == config.monitoring.path {
        return Err(ConfigError::Console("console.path and monitoring.path must differ".into()));
    }
    let root = sources
        .file
        .as_deref()
        .and_then(Path::parent)
        .map(|p| if p.as_os_str().is_empty() { PathBuf::from(".") } else { p.to_path_buf() })
        .unwrap_or_else(|| PathBuf::from("."));
    Ok(Loaded { config, unknown_env, root, file: sources.file })
}

/// Keys whose values are secrets: errors about them never print the value.
const SECRET_KEYS: &[&str] = &[
    "monitoring.bearer_token",
    "monitoring.otlp.headers",
    "database.url",
    "redis.url",
    "auth.hmac_secret",
    "auth.jwt",
];

fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.iter().any(|s| key == *s || key.starts_with(&format!("{s}.")))
}

/// Environment variables with a meaning of their own, not configuration keys.
/// (`COMPOZY_URL`, `COMPOZY_API_KEY` and `COMPOZY_CLIENT_CONFIG` are the client's, `crate::client`.)
const RESERVED_ENV: &[&str] = &[
    "COMPOZY_CONFIG",
    "COMPOZY_REQUIRE_SERVICES",
    "COMPOZY_UPDATE_DOCS",
    "COMPOZY_COMMIT",
    "COMPOZY_URL",
    "COMPOZY_API_KEY",
    "COMPOZY_CLIENT_CONFIG",
];

fn read_file(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let value: Value =
        serde_saphyr::from_str(&text).map_err(|e| ConfigError::Syntax { path: path.into(), message: e.to_string() })?;
    match value {
        Value::Object(_) => Ok(value),
        Value::Null => Ok(Value::Object(Map::new())),
        _ => Err(ConfigError::Syntax { path: path.into(), message: "the top level must be a mapping".into() }),
    }
}

fn deserialize(tree: Value, origin: &BTreeMap<String, Source>) -> Result<Config, ConfigError> {
    let lookup = tree.clone();
    serde_path_to_error::deserialize(tree).map_err(|e| {
        let key = e.path().to_string();
        let value = get_path(&lookup, &key).map_or_else(|| "(missing)".to_string(), |v| v.to_string());
        let from = origin
            .iter()
            .filter(|(k, _)| key == **k || key.starts_with(&format!("{k}.")) || k.starts_with(&format!("{key}.")))
            .map(|(_, s)| s.to_string())
            .next()
            .unwrap_or_else(|| "defaults".into());
        let message = e.into_inner().to_string();
        if is_secret_key(&key) {
            // serde quotes the offending value in its message; say only what was expected.
            let expected = message.split_once("expected ").map_or("a string", |(_, exp)| exp).to_string();
            return ConfigError::Value {
                key,
                value: "[redacted]".into(),
                origin: from,
                message: format!("expected {expected}"),
            };
        }
        ConfigError::Value { key, value, origin: from, message }
    })
}

/// Every leaf key of the configuration with its default value.
pub fn leaf_keys() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let defaults = serde_json::to_value(Config::default()).unwrap_or(Value::Null);
    collect_leaves(&defaults, "", &mut out);
    out
}

fn collect_leaves(v: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                collect_leaves(v, &key, out);
            }
        }
        _ => out.push((prefix.to_string(), v.clone())),
    }
}

fn record_leaves(v: &Value, prefix: &str, source: &Source, origin: &mut BTreeMap<String, Source>) {
    let mut leaves = Vec::new();
    collect_leaves(v, prefix, &mut leaves);
    for (k, _) in leaves {
        origin.insert(k, source.clone());
    }
}

pub fn env_name(key: &str) -> String {
    format!("COMPOZY_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// An environment value typed like the key's default: numbers and booleans parsed, lists and
/// maps read as YAML flow syntax, everything else (strings, optional values) kept as text.
fn env_value(raw: &str, default: &Value) -> Value {
    let parsed = || serde_saphyr::from_str::<Value>(raw).ok();
    match default {
        Value::Number(_) | Value::Bool(_) | Value::Array(_) | Value::Object(_) => {
            parsed().unwrap_or_else(|| Value::String(raw.to_string()))
        }
        _ => Value::String(raw.to_string()),
    }
}

/// Sets one leaf. A parent the tree lacks starts as its default, so overriding one field of a
/// struct (`auth.rate_limit.auth_failures.requests`) keeps the struct's other fields.
fn set_path(tree: &mut Value, key: &str, value: Value, defaults: &Value) {
    let mut node = tree;
    let mut default = Some(defaults);
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(map) = node else { return };
        if i == parts.len() - 1 {
            map.insert((*part).to_string(), value);
            return;
        }
        default = default.and_then(|d| d.get(part));
        let seed = default.filter(|d| d.is_object()).cloned().unwrap_or_else(|| Value::Object(Map::new()));
        node = map.entry((*part).to_string()).or_insert(seed);
    }
}

fn get_path<'a>(tree: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(tree, |node, part| node.get(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let p = dir.path().join("compozy.yaml");
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn later_sources_override_earlier() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(&dir, "server:\n  body_limit: 100\n  request_timeout: 5s\nproject:\n  name: demo\n");
        let loaded = load(Sources {
            file: Some(file),
            env: vec![("COMPOZY_SERVER_BODY_LIMIT".into(), "200".into())],
            flags: vec![("server.listen", "listen", Value::String("127.0.0.1:9999".into()))],
        })
        .expect("load");
        assert_eq!(loaded.config.server.body_limit, 200);
        assert_eq!(loaded.config.server.request_timeout, std::time::Duration::from_secs(5));
        assert_eq!(loaded.config.server.listen.port(), 9999);
        assert_eq!(loaded.config.project.name, "demo");
        assert_eq!(loaded.root, dir.path());
    }

    #[test]
    fn bad_values_name_key_value_source_and_expectation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(&dir, "server:\n  body_limit: lots\n");
        let err = load(Sources { file: Some(file), ..Default::default() }).expect_err("invalid").to_string();
        assert!(
            err.contains("`server.body_limit`") && err.contains("\"lots\"") && err.contains("compozy.yaml"),
            "{err}"
        );
        assert!(err.contains("expected usize"), "{err}");

        let err = load(Sources { env: vec![("COMPOZY_SERVER_LISTEN".into(), "nowhere".into())], ..Default::default() })
            .expect_err("invalid")
            .to_string();
        assert!(err.contains("`server.listen`") && err.contains("COMPOZY_SERVER_LISTEN"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused_and_unknown_env_vars_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(&dir, "server:\n  prot: 1\n");
        let err = load(Sources { file: Some(file), ..Default::default() }).expect_err("unknown").to_string();
        assert!(err.contains("unknown field `prot`"), "{err}");
        let loaded = load(Sources { env: vec![("COMPOZY_SERVR_PORT".into(), "1".into())], ..Default::default() })
            .expect("unknown variables are not fatal");
        assert_eq!(loaded.unknown_env, ["COMPOZY_SERVR_PORT"]);
    }

    #[test]
    fn spans_go_to_the_traces_endpoint_else_the_otlp_one_and_the_ratio_is_bounded() {
        let env = |vars: &[(&str, &str)]| Sources {
            env: vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        };
        let off = load(env(&[])).expect("defaults");
        assert_eq!(off.config.monitoring.traces_endpoint(), None, "no endpoint: tracing off");
        let otlp = load(env(&[("COMPOZY_MONITORING_OTLP_ENDPOINT", "http://c:4318")])).expect("otlp");
        assert_eq!(otlp.config.monitoring.traces_endpoint(), Some("http://c:4318"));
        let own = load(env(&[
            ("COMPOZY_MONITORING_OTLP_ENDPOINT", "http://c:4318"),
            ("COMPOZY_MONITORING_TRACING_ENDPOINT", "http://t:4318"),
        ]))
        .expect("own endpoint");
        assert_eq!(own.config.monitoring.traces_endpoint(), Some("http://t:4318"));
        let disabled = load(env(&[
            ("COMPOZY_MONITORING_OTLP_ENDPOINT", "http://c:4318"),
            ("COMPOZY_MONITORING_TRACING_ENABLED", "false"),
        ]))
        .expect("disabled");
        assert_eq!(disabled.config.monitoring.traces_endpoint(), None);
        let err = load(env(&[("COMPOZY_MONITORING_TRACING_SAMPLE_RATIO", "1.5")])).expect_err("over 1").to_string();
        assert!(err.contains("`monitoring.tracing.sample_ratio`"), "{err}");
    }

    #[test]
    fn errors_about_secrets_never_print_them() {
        let err = load(Sources {
            env: vec![("COMPOZY_MONITORING_OTLP_HEADERS".into(), "authorization=Bearer abc123".into())],
            ..Default::default()
        })
        .expect_err("a string is not a map")
        .to_string();
        assert!(err.contains("`monitoring.otlp.headers`") && err.contains("[redacted]"), "{err}");
        assert!(!err.contains("abc123"), "{err}");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(&dir, "monitoring:\n  bearer_token: [s3cr3t-token]\n");
        let err = load(Sources { file: Some(file), ..Default::default() }).expect_err("not a string").to_string();
        assert!(!err.contains("s3cr3t-token") && err.contains("`monitoring.bearer_token`"), "{err}");
    }

    #[test]
    fn empty_bearer_tokens_and_reserved_metrics_paths_are_refused() {
        let err =
            load(Sources { env: vec![("COMPOZY_MONITORING_BEARER_TOKEN".into(), "".into())], ..Default::default() })
                .expect_err("empty token")
                .to_string();
        assert!(err.contains("monitoring.bearer_token"), "{err}");
        for path in ["/healthz", "/readyz", "/metrics/:x", "/*all", "/api/v0/metrics"] {
            let err =
                load(Sources { env: vec![("COMPOZY_MONITORING_PATH".into(), path.into())], ..Default::default() })
                    .expect_err("reserved path")
                    .to_string();
            assert!(err.contains("monitoring.path"), "{path}: {err}");
        }
    }

    #[test]
    fn malformed_yaml_is_a_syntax_error_with_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(&dir, "server:\n  listen: [unclosed\n");
        let err = load(Sources { file: Some(file), ..Default::default() }).expect_err("syntax").to_string();
        assert!(err.contains("not valid YAML"), "{err}");
    }

    #[test]
    fn the_console_path_is_checked_at_load() {
        let env = |k: &str, v: &str| Sources { env: vec![(k.into(), v.into())], ..Default::default() };
        let ok = load(env("COMPOZY_CONSOLE_PATH", "/ops/console")).expect("valid");
        assert_eq!(ok.config.console.path, "/ops/console");
        for bad in ["/metrics", "/api/v0/x", "console", "/a/../b"] {
            let err = load(env("COMPOZY_CONSOLE_PATH", bad)).expect_err(bad).to_string();
            assert!(err.contains("console.path"), "{bad}: {err}");
        }
        let err = load(env("COMPOZY_CONSOLE_SESSION_TTL", "1s")).expect_err("too short").to_string();
        assert!(err.contains("console.session_ttl"), "{err}");
    }

    #[test]
    fn every_leaf_has_a_distinct_env_name() {
        let keys = leaf_keys();
        let names: std::collections::HashSet<_> = keys.iter().map(|(k, _)| env_name(k)).collect();
        assert_eq!(names.len(), keys.len());
        assert!(keys.iter().any(|(k, _)| k == "monitoring.otlp.endpoint"));
    }
}
