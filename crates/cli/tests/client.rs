//! The client commands (`compozy runs|hooks|keys|project|status`) against a running engine:
//! tables and JSON, problems printed as title and detail with a non-zero exit, an unreachable
//! engine, and the client file's 0600 rule.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{BIN, Engine, post};
use serde_json::Value;

const PROJECT: &str = "project:\n  name: client\nautoload:\n  include: [\"workflows/*.yaml\"]\n  watch: false\n";
const LONG: &str = "resource: workflow\nid: long\ntasks:\n  - {id: pause, type: wait, duration: 1h}\n";
const HOOKED: &str = r#"resource: workflow
id: on-hook
triggers:
  - type: webhook
    slug: deploy
    source: ci
    verify: { method: hmac, secret: k3y, header: X-Signature, prefix: "sha256=" }
    events:
      - name: deploy
        filter: 'body.action == "deploy"'
        input: { service: "{{ body.service }}" }
tasks:
  - { id: pause, type: wait, duration: 1h }
"#;

fn engine(dir: &Path) -> Engine {
    std::fs::write(dir.join("compozy.yaml"), PROJECT).expect("project file");
    std::fs::create_dir_all(dir.join("workflows")).expect("mkdir");
    std::fs::write(dir.join("workflows/long.yaml"), LONG).expect("workflow");
    std::fs::write(dir.join("workflows/hook.yaml"), HOOKED).expect("workflow");
    // Payloads are kept so that a delivery can be replayed.
    Engine::start(dir, &["--config", "compozy.yaml"], &[("COMPOZY_WEBHOOKS_RETENTION", "1h".to_string())])
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// `compozy args` with only the client's variables from `env` (no COLUMNS unless given, a client
/// file path that does not exist unless given): the user's own settings never leak in.
fn cli(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env_remove("COMPOZY_URL")
        .env_remove("COMPOZY_API_KEY")
        .env_remove("COLUMNS")
        .env("COMPOZY_CLIENT_CONFIG", dir.join("no-client.yaml"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run compozy");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Success, JSON output and problems through every command group, with one engine.
#[test]
fn commands_against_a_running_engine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    let url = format!("http://{}", engine.addr);
    let env = [("COMPOZY_URL", url.as_str()), ("COMPOZY_API_KEY", engine.key.as_str())];
    let run = |args: &[&str]| cli(dir.path(), args, &env);
    let ok = |args: &[&str]| {
        let out = run(args);
        assert_eq!(out.code, 0, "compozy {args:?}: {}{}", out.stdout, out.stderr);
        out
    };

    // runs: start (JSON), list (table and JSON), a problem, cancel, retry, show.
    let started = ok(&["runs", "start", "long", "--input", r#"{"a": 1}"#, "--output", "json"]).json();
    let id = started["execution_id"].as_str().expect("id").to_string();
    assert_eq!(started["status"], "pending");
    let table = ok(&["runs", "list"]).stdout;
    let header = table.lines().next().expect("header");
    assert!(header.starts_with("ID") && header.contains("WORKFLOW") && header.contains("STATUS"), "{table}");
    assert!(table.lines().any(|l| l.starts_with(&id) && l.contains("long")), "{table}");
    let listed = ok(&["runs", "list", "-o", "json", "--workflow", "long"]).json();
    assert_eq!(listed["executions"][0]["id"], id.as_str());

    let refused = run(&["runs", "retry", &id]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.starts_with("error: Execution cannot be retried (409): the execution is ")
            && refused.stderr.contains("; only failed or cancelled executions can be retried"),
        "{}",
        refused.stderr
    );
    assert!(refused.stdout.is_empty());
    assert!(ok(&["runs", "cancel", &id]).stdout.contains("cancelled"));
    let retried = ok(&["runs", "retry", &id, "-o", "json"]).json();
    assert_eq!(retried["retry_of"], id.as_str());
    let retry = retried["execution_id"].as_str().expect("retry id").to_string();
    let shown = ok(&["runs", "show", &id]).stdout;
    assert!(shown.lines().any(|l| l.starts_with("retried_by:") && l.ends_with(&retry)), "{shown}");
    assert!(shown.lines().any(|l| l.starts_with("status:") && l.ends_with("cancelled")), "{shown}");
    assert!(shown.contains("TASK") && shown.contains("pause"), "the tasks table: {shown}");
    let shown = ok(&["runs", "show", &retry, "-o", "json"]).json();
    assert_eq!(
        (&shown["execution"]["retry_of"], &shown["execution"]["input"]),
        (&Value::from(id.as_str()), &serde_json::json!({"a": 1}))
    );
    let missing = run(&["runs", "show", "nope"]);
    assert_eq!((missing.code, missing.stderr.trim()), (1, "error: Not found (404): no execution with this id"));

    // Tables fit the width they are given: long cells are cut, never wrapped.
    let narrow = cli(dir.path(), &["runs", "list"], &[env[0], env[1], ("COLUMNS", "60")]);
    assert_eq!(narrow.code, 0, "{}", narrow.stderr);
    assert!(narrow.stdout.lines().all(|l| l.chars().count() <= 60), "{}", narrow.stdout);
    assert!(narrow.stdout.contains('…'), "{}", narrow.stdout);

    // hooks: a signed delivery, the log, a replay.
    let body = r#"{"action":"deploy","service":"api"}"#;
    let sig = format!("sha256={}", compozy_webhooks::verify::sign::hmac_hex("k3y", body.as_bytes()));
    let (status, _, _) = post(engine.addr, "/api/v0/hooks/deploy", &[("x-signature", &sig)], body).expect("delivery");
    assert_eq!(status, 202);
    let log = ok(&["hooks", "deliveries", "-o", "json"]).json();
    let delivery = log["deliveries"][0]["id"].as_str().expect("delivery id").to_string();
    assert!(ok(&["hooks", "deliveries", "--slug", "deploy"]).stdout.contains(&delivery));
    let replayed = ok(&["hooks", "replay", &delivery, "-o", "json"]).json();
    assert_eq!(replayed["status"], "accepted", "{replayed}");
    let replays = ok(&["hooks", "deliveries", "-o", "json"]).json();
    assert_eq!(replays["deliveries"][0]["replay_of"], delivery.as_str(), "{replays}");
    assert_eq!(run(&["hooks", "replay", "nope"]).code, 1);

    // keys: create (the key alone on stdout), list, revoke; a revoked key is refused.
    let created = ok(&["keys", "create", "--name", "ci"]);
    let key = created.stdout.trim().to_string();
    assert!(!key.is_empty() && !key.contains(' ') && created.stderr.contains("shown this once"), "{}", created.stderr);
    let keys = ok(&["keys", "list", "-o", "json"]).json();
    let ci = keys["keys"].as_array().expect("keys").iter().find(|k| k["name"] == "ci").expect("the ci key").clone();
    let ci_id = ci["id"].as_str().expect("id");
    assert!(ok(&["keys", "list"]).stdout.lines().any(|l| l.starts_with(ci_id) && l.contains("ci")));
    assert_eq!(cli(dir.path(), &["runs", "list"], &[env[0], ("COMPOZY_API_KEY", &key)]).code, 0);
    assert!(ok(&["keys", "revoke", ci_id]).stdout.contains("revoked"));
    let revoked = cli(dir.path(), &["runs", "list"], &[env[0], ("COMPOZY_API_KEY", &key)]);
    assert_eq!(revoked.code, 1);
    assert!(revoked.stderr.starts_with("error: Unauthorized (401)"), "{}", revoked.stderr);
    let anonymous = cli(dir.path(), &["runs", "list"], &[env[0]]);
    assert!(anonymous.stderr.contains("hint: no API key: set COMPOZY_API_KEY"), "{}", anonymous.stderr);

    // status: every component, ready.
    let status = ok(&["status"]).stdout;
    assert!(status.starts_with("engine: ready"), "{status}");
    for component in ["store", "cache", "server", "autoload"] {
        assert!(status.lines().any(|l| l.starts_with(component) && l.contains("yes")), "{component}: {status}");
    }
    assert_eq!(ok(&["status", "-o", "json"]).json()["components"]["store"]["ready"], true);

    // project reload: loaded, then refused with each error named.
    assert!(ok(&["project", "reload"]).stdout.contains("project reloaded"));
    std::fs::write(dir.path().join("workflows/broken.yaml"), "resource: workflow\nid: [\n").expect("write");
    let rejected = run(&["project", "reload"]);
    assert_eq!(rejected.code, 1);
    assert!(
        rejected.stderr.contains("Reload rejected (422)") && rejected.stderr.contains("workflows/broken.yaml"),
        "{}",
        rejected.stderr
    );

    // The client file: refused while others may read it, used once it is 0600.
    let file = dir.path().join("client.yaml");
    std::fs::write(&file, format!("url: {url}\napi_key: {}\n", engine.key)).expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let file_env = [("COMPOZY_CLIENT_CONFIG", file.to_str().expect("utf-8 path"))];
    let open = cli(dir.path(), &["runs", "list"], &file_env);
    assert_eq!(open.code, 78, "{}", open.stderr);
    assert!(open.stderr.contains("mode 0644") && open.stderr.contains("chmod 600"), "{}", open.stderr);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let private = cli(dir.path(), &["runs", "list", "-o", "json"], &file_env);
    assert_eq!(private.code, 0, "{}", private.stderr);
    assert!(private.json()["executions"].as_array().is_some_and(|a| a.len() >= 2));
}

#[test]
fn an_unreachable_engine_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = format!("http://127.0.0.1:{port}");
    let out = cli(dir.path(), &["--url", &url, "runs", "list"], &[]);
    assert_eq!(out.code, 69, "{}", out.stderr);
    assert!(out.stderr.starts_with(&format!("error: cannot reach the engine at {url}: ")), "{}", out.stderr);
    assert!(out.stderr.contains("--url"), "{}", out.stderr);
    let bad = cli(dir.path(), &["--url", "localhost:5001", "status"], &[]);
    assert_eq!(bad.code, 78, "{}", bad.stderr);
}
