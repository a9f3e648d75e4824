//! Tools cannot leave the project root: `compozy validate` reports each escape as a security
//! error with file and line, and the worker refuses one that appears after the load.

mod common;

use std::path::Path;
use std::process::Command;

use common::{BIN, Engine};

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn validate(root: &Path, env: &[(&str, &str)]) -> (Option<i32>, serde_json::Value) {
    let mut cmd = Command::new(BIN);
    cmd.args(["validate", "--format", "json"]).arg(root).current_dir(root);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run compozy validate");
    let report = serde_json::from_slice(&out.stdout).expect("JSON report");
    (out.status.code(), report)
}

#[cfg(unix)]
#[test]
fn validate_reports_every_escape_as_a_security_error_with_file_and_line() {
    let project = tempfile::tempdir().expect("project");
    let root = project.path();
    write(root, "absolute.yaml", "resource: tool\nid: absolute\ndescription: d\ncommand: /bin/sh\nargs: [-c, id]\n");
    write(root, "updir.yaml", "resource: tool\nid: updir\ncommand: sh\nworking_dir: ../../../../\n");
    write(root, "dotdot.yaml", "resource: tool\nid: dotdot\ncommand: ../../../../bin/sh\n");
    std::os::unix::fs::symlink("/", root.join("escape")).expect("symlink");
    write(root, "symlinked.yaml", "resource: tool\nid: symlinked\ncommand: escape/bin/sh\n");
    write(root, "fine.yaml", "resource: tool\nid: fine\ncommand: sh\nworking_dir: sub/dir\n");

    let (code, report) = validate(root, &[]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["error_counts"]["security"], 4, "{report}");
    assert_eq!(report["resources"]["tool"], 1, "only `fine` loads");
    let errors: Vec<(String, u64, String)> = report["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            assert_eq!(e["category"], "security", "{e}");
            let message = e["message"].as_str().expect("message").to_string();
            assert!(!message.contains("/bin") && !message.contains("../"), "no path quoted: {message}");
            (e["file"].as_str().expect("file").into(), e["line"].as_u64().expect("line"), message)
        })
        .collect();
    let at: Vec<(&str, u64)> = errors.iter().map(|(f, l, _)| (f.as_str(), *l)).collect();
    assert_eq!(at, [("absolute.yaml", 4), ("dotdot.yaml", 3), ("symlinked.yaml", 3), ("updir.yaml", 4)]);
    assert!(errors[0].2.starts_with("command is an absolute path"), "{}", errors[0].2);
    assert!(errors[3].2.starts_with("working_dir leaves the project root"), "{}", errors[3].2);

    // The operator allows /bin/sh: that tool loads; the working directory rule has no exception.
    let (_, report) = validate(root, &[("COMPOZY_WORKER_ALLOWED_COMMANDS", "[/bin/sh]")]);
    // `dotdot` and `symlinked` resolve to the same allowed program.
    assert_eq!(report["error_counts"]["security"], 1, "{report}");
    assert_eq!(report["errors"][0]["file"], "updir.yaml");
    assert_eq!(report["resources"]["tool"], 4);
}

#[cfg(unix)]
#[test]
fn the_worker_refuses_a_tool_whose_directory_became_a_symlink_out_of_the_root() {
    let dir = tempfile::tempdir().expect("dir");
    let outside = tempfile::tempdir().expect("outside");
    let root = dir.path();
    write(root, "compozy.yaml", "project: {name: confine}\nautoload: {include: [\"resources/**/*.yaml\"]}\n");
    write(
        root,
        "resources/mark.yaml",
        "resource: tool\nid: mark\ncommand: sh\nargs: [-c, \"touch ran\"]\nworking_dir: work\n",
    );
    write(
        root,
        "resources/flow.yaml",
        "resource: workflow\nid: flow\ntriggers: [{type: manual}]\ntasks:\n  - {id: mark, type: tool, tool: mark, timeout: 5s}\n",
    );
    std::fs::create_dir(root.join("work")).expect("work dir");
    let engine = Engine::start(root, &["--config", "compozy.yaml"], &[]);

    // Loaded while `work` was a directory of the project; now it points outside.
    std::fs::remove_dir(root.join("work")).expect("rmdir");
    std::os::unix::fs::symlink(outside.path(), root.join("work")).expect("symlink");
    let (status, _, body) = engine.request("POST", "/api/v0/workflows/flow/executions", &[]);
    assert_eq!(status, 202, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let id = v["data"]["execution_id"].as_str().expect("execution id").to_string();
    engine.eventually("the run fails", |e| e.get(&format!("/api/v0/executions/{id}")).2.contains("\"failed\""));
    assert!(!outside.path().join("ran").exists(), "the tool never ran outside the root");
    assert_eq!(
        engine.metric("compozy_worker_activity_duration_seconds_count{activity_type=\"tool\",outcome=\"error\"}"),
        Some(1.0)
    );

    // Back inside the root, the same tool runs.
    std::fs::remove_file(root.join("work")).expect("unlink");
    std::fs::create_dir(root.join("work")).expect("work dir");
    let (_, _, body) = engine.request("POST", "/api/v0/workflows/flow/executions", &[]);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let id = v["data"]["execution_id"].as_str().expect("execution id").to_string();
    engine.eventually("the run succeeds", |e| e.get(&format!("/api/v0/executions/{id}")).2.contains("\"succeeded\""));
    assert!(root.join("work/ran").exists());
}
