//! Every error category, with its position, its message and its metric.

mod common;

use common::*;
use compozy_autoload::{AutoloadConfig, ConfigError, ErrorCategory, LoadError, ReloadError, ResourceKind};

fn lenient_errors(p: &Project) -> (Vec<LoadError>, std::sync::Arc<compozy_telemetry::Registry>) {
    let m = metrics();
    let loader = autoloader(p, lenient(), &m);
    let report = loader.reload_blocking().expect("lenient load applies");
    (report.errors, m)
}

#[test]
fn unknown_field_is_a_validation_error_with_its_name_and_line() {
    let p = Project::new();
    p.write("tools/t.yaml", "resource: tool\nid: t\ncommand: x\ncomand_typo: y\n");
    let (errors, m) = lenient_errors(&p);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert_eq!((e.file.as_str(), e.line, e.category), ("tools/t.yaml", Some(4), ErrorCategory::Validation));
    assert!(e.message.starts_with("unknown field `comand_typo`"), "{}", e.message);
    assert_eq!(errors_metric(&m, "validation_error"), 1.0);
    assert_eq!(errors_metric(&m, "parse_error"), 0.0);
    assert_eq!(value(&m, "compozy_autoload_files_processed_total", &[("outcome", "error")]), 1.0);
    assert_eq!(value(&m, "compozy_autoload_files_processed_total", &[("outcome", "success")]), 0.0);
}

#[test]
fn nested_unknown_field_and_semantic_errors_point_at_their_line() {
    let p = Project::new();
    let wf = "resource: workflow\nid: w\ntasks:\n  - id: a\n    type: http\n    url: ftp://x\n";
    p.write("a.yaml", wf);
    p.write("b.yaml", "resource: workflow\nid: b\ntasks:\n  - id: a\n    type: wait\n    duration: 1s\n    retry:\n      max_attempts: 2\n      jitter: 3\n");
    p.write("c.yaml", "resource: workflow\nid: c\ntasks: []\n");
    let (errors, m) = lenient_errors(&p);
    let got: Vec<_> = errors.iter().map(|e| (e.file.as_str(), e.line, e.message.as_str())).collect();
    assert_eq!(
        got,
        [
            ("a.yaml", Some(5), "task `a`: url must be an http:// or https:// URL"),
            ("b.yaml", Some(9), "unknown field `jitter`, expected one of max_attempts, backoff"),
            ("c.yaml", Some(3), "a workflow needs at least one task"),
        ]
    );
    assert_eq!(errors_metric(&m, "validation_error"), 3.0);
}

#[test]
fn syntax_errors_are_parse_errors() {
    let p = Project::new();
    p.write("bad.yaml", "resource: tool\nid: [unclosed\n");
    p.write("bad.json", "{\"resource\": \"tool\", \"id\": \"x\",,}");
    let (errors, m) = lenient_errors(&p);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().all(|e| e.category == ErrorCategory::Parse && e.line.is_some()), "{errors:?}");
    assert_eq!(errors_metric(&m, "parse_error"), 2.0);
}

#[test]
fn binary_and_non_utf8_files_are_reported() {
    let p = Project::new();
    p.write("binary.yaml", b"resource: tool\n\x00\x01\x02");
    p.write("latin1.yaml", b"resource: tool\nid: caf\xe9\n");
    let (errors, m) = lenient_errors(&p);
    let got: Vec<_> = errors.iter().map(|e| (e.file.as_str(), e.line, e.column, e.message.as_str())).collect();
    assert_eq!(
        got,
        [
            ("binary.yaml", Some(2), Some(1), "binary file (contains NUL bytes)"),
            ("latin1.yaml", Some(2), Some(8), "not valid UTF-8"),
        ]
    );
    assert_eq!(errors_metric(&m, "parse_error"), 2.0);
}

#[test]
fn missing_or_unknown_resource_type() {
    let p = Project::new();
    p.write("a.yaml", "id: x\n");
    p.write("b.yaml", "resource: widget\nid: x\n");
    p.write("c.yaml", "resource: tool\ncommand: x\n");
    let (errors, _) = lenient_errors(&p);
    let got: Vec<_> = errors.iter().map(|e| (e.file.as_str(), e.category, e.message.as_str())).collect();
    assert_eq!(
        got,
        [
            ("a.yaml", ErrorCategory::Validation, "missing field `resource`"),
            ("b.yaml", ErrorCategory::Validation, "`resource` must be one of workflow, agent, tool, mcp"),
            ("c.yaml", ErrorCategory::Validation, "missing field `id`"),
        ]
    );
}

#[test]
fn duplicate_ids_differing_in_case_resolve_to_the_first_path_every_time() {
    let p = Project::new();
    // Written in reverse order so creation order and path order differ.
    p.write("z/tool.yaml", "resource: tool\nid: Fetch\ncommand: z\n");
    p.write("m/tool.yaml", "resource: tool\nid: FETCH\ncommand: m\n");
    p.write("a/tool.yaml", "resource: tool\nid: fetch\ncommand: a\n");
    for run in 0..20 {
        let (errors, m) = {
            let m = metrics();
            let loader = autoloader(&p, lenient(), &m);
            let report = loader.reload_blocking().expect("lenient");
            assert_eq!(loader.current().tool("FeTcH").expect("registered").command, "a", "run {run}");
            (report.errors, m)
        };
        let got: Vec<_> = errors.iter().map(|e| (e.file.as_str(), e.line, e.category)).collect();
        assert_eq!(
            got,
            [("m/tool.yaml", Some(2), ErrorCategory::Duplicate), ("z/tool.yaml", Some(2), ErrorCategory::Duplicate)]
        );
        assert_eq!(errors[0].message, "tool `FETCH` is already defined in a/tool.yaml (IDs are case-insensitive)");
        assert_eq!(errors_metric(&m, "duplicate_error"), 2.0);
    }
}

#[test]
fn duplicate_webhook_slugs_name_both_files() {
    let p = Project::new();
    p.write("one.yaml", workflow("one", "deploy"));
    p.write("two.yaml", workflow("two", "deploy"));
    let (errors, m) = lenient_errors(&p);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].file, "two.yaml");
    assert_eq!(errors[0].line, Some(5));
    assert_eq!(errors[0].message, "webhook slug `deploy` is already used by workflow `one` in one.yaml");
    assert_eq!(errors_metric(&m, "duplicate_error"), 1.0);
}

#[test]
fn dangling_references_drop_the_resource() {
    let p = Project::new();
    p.write("wf.yaml", "resource: workflow\nid: wf\ntasks:\n  - id: run\n    type: tool\n    tool: missing\n");
    let m = metrics();
    let loader = autoloader(&p, lenient(), &m);
    let report = loader.reload_blocking().expect("lenient");
    assert_eq!(report.errors.len(), 1);
    assert_eq!(report.errors[0].line, Some(6));
    assert_eq!(report.errors[0].message, "task `run` refers to tool `missing`, which is not defined");
    assert!(loader.current().workflow("wf").is_none());
    assert_eq!(errors_metric(&m, "validation_error"), 1.0);
}

#[test]
fn strict_mode_stops_at_the_first_error_in_path_order() {
    let p = Project::new();
    for i in 0..50 {
        p.write(&format!("t{i:02}.yaml"), tool(&format!("t{i}")));
    }
    p.write("t10.yaml", "resource: tool\nid: t10\nbogus: 1\n");
    p.write("t30.yaml", "resource: tool\n: :\n");
    let m = metrics();
    let loader = autoloader(&p, AutoloadConfig::default(), &m);
    let Err(ReloadError::Rejected(report)) = loader.reload_blocking() else { panic!("strict load must fail") };
    assert_eq!(report.errors.len(), 1);
    assert_eq!(report.errors[0].file, "t10.yaml");
    assert_eq!(report.files_processed, 11);
    assert!(!report.applied);
    assert!(loader.current().is_empty());
    assert_eq!(errors_metric(&m, "validation_error"), 1.0);
    assert_eq!(errors_metric(&m, "parse_error"), 0.0);
    assert_eq!(value(&m, "compozy_autoload_files_processed_total", &[("outcome", "success")]), 10.0);
    assert_eq!(value(&m, "compozy_autoload_last_reload_successful", &[]), 0.0);
    assert_eq!(value(&m, "compozy_autoload_last_reload_success_timestamp_seconds", &[]), 0.0);
}

#[test]
fn lenient_mode_reports_all_and_loads_the_rest() {
    let p = Project::new();
    p.write("good.yaml", tool("good"));
    p.write("bad1.yaml", "resource: tool\n");
    p.write("bad2.yaml", "{{{");
    let (errors, m) = lenient_errors(&p);
    assert_eq!(errors.iter().map(|e| e.file.as_str()).collect::<Vec<_>>(), ["bad1.yaml", "bad2.yaml"]);
    assert_eq!(value(&m, "compozy_autoload_configs_loaded_total", &[("type", "tool")]), 1.0);
    assert_eq!(value(&m, "compozy_autoload_configs_loaded_total", &[("type", "agent")]), 0.0);
    assert_eq!(value(&m, "compozy_autoload_last_reload_successful", &[]), 1.0);
}

#[cfg(unix)]
#[test]
fn symlinks_out_of_the_root_are_security_errors() {
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("secret.yaml"), tool("stolen")).expect("write");
    let p = Project::new();
    p.write("ok.yaml", tool("ok"));
    std::os::unix::fs::symlink(outside.path().join("secret.yaml"), p.root().join("link.yaml")).expect("symlink");
    std::os::unix::fs::symlink(p.root().join("ok.yaml"), p.root().join("inside.yml")).expect("symlink");
    std::os::unix::fs::symlink(p.root().join("nowhere.yaml"), p.root().join("dangling.yaml")).expect("symlink");
    std::os::unix::fs::symlink(outside.path(), p.root().join("dir")).expect("symlink");
    let (errors, m) = lenient_errors(&p);
    let got: Vec<_> = errors.iter().map(|e| (e.file.as_str(), e.category, e.message.as_str())).collect();
    assert_eq!(
        got,
        [
            ("dangling.yaml", ErrorCategory::Security, "cannot resolve the real path (entity not found)"),
            ("link.yaml", ErrorCategory::Security, "resolves to a path outside the project root"),
            // A symlink inside the root is followed: the same tool twice, the first path wins.
            (
                "ok.yaml",
                ErrorCategory::Duplicate,
                "tool `ok` is already defined in inside.yml (IDs are case-insensitive)"
            ),
        ]
    );
    assert_eq!(errors_metric(&m, "security_error"), 2.0);
}

#[test]
fn absolute_and_parent_patterns_are_refused_at_configuration() {
    for (include, reason) in [
        ("/etc/**/*.yaml", "is absolute; patterns are relative to the project root"),
        ("../other/*.yaml", "contains `..`; patterns cannot leave the project root"),
        ("resources/../../x.yaml", "contains `..`; patterns cannot leave the project root"),
        ("", "is empty"),
    ] {
        let config = AutoloadConfig { include: vec![include.into()], ..AutoloadConfig::default() };
        let err = compozy_autoload::Autoloader::new(config, "/tmp", PROJECT, &metrics()).err().expect("refused");
        assert_eq!(
            err,
            ConfigError::InvalidPattern { field: "include", pattern: include.into(), reason: reason.into() },
        );
    }
    let config = AutoloadConfig { exclude: vec!["C:/x".into()], ..AutoloadConfig::default() };
    assert!(matches!(config.validate(), Err(ConfigError::InvalidPattern { field: "exclude", .. })));
}

#[test]
fn default_excludes_and_the_project_file_are_skipped() {
    let p = Project::new();
    p.write("compozy.yaml", "project: {name: x}\n");
    p.write("t.yaml", tool("t"));
    for junk in
        ["t.yaml~", ".#t.yaml", "t.yaml.swp", ".git/config.yaml", "node_modules/x/y.json", "..2024_01_01/t.yaml"]
    {
        p.write(junk, "garbage: [");
    }
    p.write("sub/compozy.yaml", tool("nested-project-file-is-a-resource"));
    let (errors, _) = lenient_errors(&p);
    assert!(errors.is_empty(), "{errors:?}");
    let m = metrics();
    let loader = autoloader(&p, lenient(), &m);
    let report = loader.reload_blocking().expect("ok");
    assert_eq!(report.files_discovered, 2);
    assert_eq!(loader.current().count(ResourceKind::Tool), 2);
}

#[test]
fn config_parses_with_defaults_and_rejects_unknown_fields() {
    let c: AutoloadConfig =
        serde_saphyr::from_str("strict: false\ndebounce: 1s\ninclude: ['resources/**/*.yaml']\n").expect("config");
    assert!(!c.strict && c.enabled && !c.watch);
    assert_eq!(c.debounce, std::time::Duration::from_secs(1));
    assert_eq!(c.max_file_size, 1024 * 1024);
    let err = serde_saphyr::from_str::<AutoloadConfig>("stict: false\n").expect_err("unknown field");
    assert!(err.to_string().contains("unknown field `stict`"), "{err}");
}

#[test]
fn unset_secret_variables_and_excess_nesting_are_reported() {
    let p = Project::new();
    p.write("env.yaml", "resource: tool\nid: e\ncommand: x\nenv:\n  TOKEN: ${COMPOZY_AUTOLOAD_SURELY_UNSET}\n");
    let nested = format!("resource: tool\nid: n\ncommand: x\ninput: {}1{}\n", "[".repeat(40), "]".repeat(40));
    p.write("nested.yaml", nested);
    let (errors, m) = lenient_errors(&p);
    let got: Vec<_> = errors.iter().map(|e| (e.file.as_str(), e.line, e.category, e.message.as_str())).collect();
    assert_eq!(
        got,
        [
            (
                "env.yaml",
                Some(5),
                ErrorCategory::Validation,
                "environment variable COMPOZY_AUTOLOAD_SURELY_UNSET is not set"
            ),
            ("nested.yaml", Some(4), ErrorCategory::Parse, "nested deeper than the limit (autoload.max_nesting)"),
        ]
    );
    assert_eq!(errors_metric(&m, "validation_error"), 1.0);
    assert_eq!(errors_metric(&m, "parse_error"), 1.0);
}
