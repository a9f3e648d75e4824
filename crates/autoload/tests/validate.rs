//! `compozy validate`: the report and both renderings.

mod common;

use common::*;
use compozy_autoload::{AutoloadConfig, OutputFormat, validate_project};

#[test]
fn human_rendering_points_at_file_and_line_and_summarises_by_type() {
    let p = Project::new();
    p.write("tools/a.yaml", tool("a"));
    p.write("tools/b.yaml", tool("b"));
    p.write("flows/w.yaml", workflow("w", "hook"));
    p.write("flows/bad.yaml", "resource: workflow\nid: bad\ntasks:\n  - id: x\n    type: sleep\n");
    p.write("broken.json", "{\"resource\": \"tool\"");
    // Strict in the configuration: validate still reports every error.
    let report = validate_project(p.root(), &AutoloadConfig::default(), false).expect("config");
    assert!(!report.is_ok());
    let root = p.root().display().to_string();
    let expected = format!(
        "broken.json:1:1: parse error: unclosed bracket '{{'\n\
         flows/bad.yaml:5:11: validation error: unknown value, expected one of tool, http, wait\n\
         \n\
         Checked 5 files in {root}\n\
         \x20 workflows      1\n\
         \x20 agents         0\n\
         \x20 tools          2\n\
         \x20 mcps           0\n\
         2 errors: 1 parse, 1 validation\n"
    );
    assert_eq!(report.render(OutputFormat::Human), expected);
}

#[test]
fn clean_project_says_so() {
    let p = Project::new();
    p.write("t.yaml", tool("t"));
    let report = validate_project(p.root(), &AutoloadConfig::default(), false).expect("config");
    assert!(report.is_ok());
    assert!(report.render_human().ends_with("  mcps           0\nNo errors.\n"), "{}", report.render_human());
}

#[test]
fn json_rendering_is_structured() {
    let p = Project::new();
    p.write("t.yaml", "resource: tool\nid: t\ncommand: x\nextra: 1\n");
    let report = validate_project(p.root(), &AutoloadConfig::default(), false).expect("config");
    let json: serde_json::Value = serde_json::from_str(&report.render(OutputFormat::Json)).expect("json");
    assert_eq!(json["files"], 1);
    assert_eq!(json["resources"]["tool"], 0);
    assert_eq!(json["error_counts"]["validation"], 1);
    assert_eq!(json["error_counts"]["parse"], 0);
    let err = &json["errors"][0];
    assert_eq!(err["file"], "t.yaml");
    assert_eq!(err["line"], 4);
    assert_eq!(err["category"], "validation");
    assert_eq!(
        err["message"],
        "unknown field `extra`, expected one of resource, id, description, command, args, env, working_dir, timeout, input, output"
    );
}

#[test]
fn large_projects_validate_with_the_progress_bar_enabled() {
    let p = Project::new();
    for i in 0..250 {
        p.write(&format!("t/{i:03}.yaml"), tool(&format!("t{i}")));
    }
    let report = validate_project(p.root(), &AutoloadConfig::default(), true).expect("config");
    assert!(report.is_ok());
    assert_eq!(report.resources[&compozy_autoload::ResourceKind::Tool], 250);
}

#[test]
fn invalid_configuration_is_an_error_not_a_report() {
    let config = AutoloadConfig { include: vec!["../*.yaml".into()], ..AutoloadConfig::default() };
    assert!(validate_project(std::path::Path::new("."), &config, false).is_err());
}
