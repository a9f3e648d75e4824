//! The project the console tests run, and a browser-less console client (cookie, CSRF token).

use std::net::SocketAddr;
use std::path::Path;

use super::{Engine, create_user, exchange_raw, http, post};

const PROJECT: &str = "project:\n  name: console\nautoload:\n  include: [\"workflows/*.yaml\"]\n  watch: false\n\
webhooks:\n  retention: 1h\n";

/// `quick` finishes in a moment, `slow` waits long enough to be cancelled, `broken` fails at
/// once (nothing listens on port 9), `on-hook` is started by webhook `deploy` (no signature).
const WORKFLOWS: [(&str, &str); 4] = [
    (
        "quick",
        "resource: workflow\nid: quick\ntriggers:\n  - type: manual\ntasks:\n  - { id: pause, type: wait, duration: 300ms }\n",
    ),
    (
        "slow",
        "resource: workflow\nid: slow\ntriggers:\n  - type: manual\ntasks:\n  - { id: nap, type: wait, duration: 120s }\n",
    ),
    (
        "broken",
        "resource: workflow\nid: broken\ntriggers:\n  - type: manual\ntasks:\n  - { id: call, type: http, url: \"http://127.0.0.1:9/\", timeout: 2s }\n",
    ),
    (
        "hook",
        "resource: workflow\nid: on-hook\ntriggers:\n  - type: webhook\n    slug: deploy\n    source: ci\n    verify: { method: none }\n    dedupe: { enabled: false }\ntasks:\n  - { id: pause, type: wait, duration: 100ms }\n",
    ),
];

/// Writes the project into `dir`.
pub fn project(dir: &Path) {
    std::fs::write(dir.join("compozy.yaml"), PROJECT).expect("project file");
    std::fs::create_dir_all(dir.join("workflows")).expect("mkdir");
    for (name, text) in WORKFLOWS {
        std::fs::write(dir.join(format!("workflows/{name}.yaml")), text).expect("workflow");
    }
}

/// Starts the engine on the project with a `user` key made first: `(engine, user key)`.
pub fn start(dir: &Path, env: &[(&str, String)]) -> (Engine, String) {
    project(dir);
    let args = ["--config", "compozy.yaml"];
    let user = create_user(dir, &args, env, "viewer@example.com", "user");
    let mut env = env.to_vec();
    env.extend([
        ("COMPOZY_WORKER_POLL_INTERVAL", "100ms".to_string()),
        ("COMPOZY_CONSOLE_SAMPLE_INTERVAL", "1s".to_string()),
    ]);
    (Engine::start(dir, &args, &env), user)
}

/// Starts a run of `workflow` through the API as the admin; its id.
pub fn start_run(engine: &Engine, workflow: &str, input: &str) -> String {
    let path = format!("/api/v0/workflows/{workflow}/executions");
    let bearer = format!("Bearer {}", engine.key);
    let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
    let (status, _, body) = post(engine.addr, &path, &headers, &format!("{{\"input\": {input}}}")).expect("exchange");
    assert_eq!(status, 202, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["data"]["execution_id"].as_str().expect("id").to_string()
}

/// A run's status through the API.
pub fn run_status(engine: &Engine, id: &str) -> String {
    let (_, _, body) = engine.get(&format!("/api/v0/executions/{id}"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["data"]["execution"]["status"].as_str().unwrap_or("").to_string()
}

/// A signed-in console session over plain HTTP.
pub struct Session {
    pub addr: SocketAddr,
    pub cookie: String,
}

impl Session {
    /// Signs in with `key`; panics unless the console answers with a session cookie.
    pub fn sign_in(addr: SocketAddr, key: &str) -> Session {
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        let (status, head, body) =
            exchange_raw(addr, "POST", "/console/sign-in", &headers, &format!("key={key}")).expect("exchange");
        assert_eq!(status, 303, "{head}\n{body}");
        let cookie = head
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
            .and_then(|c| c.split(';').next())
            .expect("set-cookie")
            .to_string();
        Session { addr, cookie }
    }

    pub fn get(&self, path: &str) -> (u16, String, String) {
        http(self.addr, "GET", path, &[("cookie", &self.cookie)]).expect("exchange")
    }

    /// The CSRF token in the forms of `page`.
    pub fn csrf(&self, page: &str) -> String {
        let (status, _, body) = self.get(page);
        assert_eq!(status, 200, "{body}");
        csrf_in(&body).expect("a form with a csrf field")
    }

    /// Posts a form (`fields` already URL-encoded) with the session cookie.
    pub fn post(&self, path: &str, fields: &str, extra: &[(&str, &str)]) -> (u16, String, String) {
        let mut headers = vec![("cookie", self.cookie.as_str()), ("content-type", "application/x-www-form-urlencoded")];
        headers.extend_from_slice(extra);
        post(self.addr, path, &headers, fields).expect("exchange")
    }
}

/// Posts the sign-in form.
pub fn sign_in(addr: SocketAddr, key: &str, extra: &[(&str, &str)]) -> (u16, String, String) {
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    headers.extend_from_slice(extra);
    post(addr, "/console/sign-in", &headers, &format!("key={key}")).expect("exchange")
}

pub fn csrf_in(page: &str) -> Option<String> {
    let at = page.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(page[at..].split('"').next()?.to_string())
}
