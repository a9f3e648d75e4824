//! Loading a generated project of 10,000 resource files (mixed types), warm page cache.
//!
//! cargo bench -p compozy-autoload --bench load -- --warm-up-time 1 --measurement-time 5 --sample-size 10

use std::path::Path;

use compozy_autoload::{AutoloadConfig, Autoloader, ResourceKind};
use compozy_telemetry::{Registry, RegistryOptions};
use criterion::{Criterion, criterion_group, criterion_main};

const FILES: usize = 10_000;

fn write(root: &Path, rel: String, body: String) {
    let path = root.join(rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    std::fs::write(path, body).expect("write");
}

/// 40% tools, 20% MCP servers, 20% agents, 20% workflows (with webhook triggers and three tasks).
fn generate(root: &Path) {
    for i in 0..FILES {
        let dir = format!("d{:02}", i % 50);
        match i % 5 {
            0 | 1 => write(
                root,
                format!("{dir}/tool-{i}.yaml"),
                format!(
                    "resource: tool\nid: tool-{i}\ndescription: generated\ncommand: /usr/bin/tool\nargs: [--json, --id, '{i}']\nenv:\n  LEVEL: info\ntimeout: 30s\ninput:\n  type: object\n  properties:\n    name: {{type: string}}\n"
                ),
            ),
            2 => write(
                root,
                format!("{dir}/mcp-{i}.json"),
                format!(
                    "{{\"resource\": \"mcp\", \"id\": \"mcp-{i}\", \"transport\": \"stdio\", \"command\": \"server\", \"args\": [\"--port\", \"{i}\"]}}"
                ),
            ),
            3 => write(
                root,
                format!("{dir}/agent-{i}.yml"),
                format!(
                    "resource: agent\nid: agent-{i}\nmodel:\n  provider: openai\n  name: gpt-4o-mini\n  temperature: 0.2\ninstructions: |\n  Review the change and explain the risk.\ntools: [tool-{}]\nmcps: [mcp-{}]\n",
                    i - 3,
                    i - 1
                ),
            ),
            _ => write(
                root,
                format!("{dir}/workflow-{i}.yaml"),
                format!(
                    "resource: workflow\nid: wf-{i}\ntriggers:\n  - type: webhook\n    slug: hook-{i}\n    verify: {{method: hmac, secret: s3cret, header: X-Signature}}\n  - type: manual\ninput:\n  type: object\ntasks:\n  - id: run\n    type: tool\n    tool: tool-{}\n    timeout: 10s\n    retry: {{max_attempts: 3, backoff: {{initial: 1s, max: 10s, multiplier: 2}}}}\n  - id: pause\n    type: wait\n    duration: 1s\n  - id: call\n    type: http\n    method: POST\n    url: https://example.invalid/{i}\n    body: {{n: {i}}}\n",
                    i - 4
                ),
            ),
        }
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    generate(dir.path());
    let metrics = Registry::new(RegistryOptions::default());
    let loader = Autoloader::new(AutoloadConfig::default(), dir.path(), "bench", &metrics).expect("config");
    let report = loader.reload_blocking().expect("generated project loads");
    assert_eq!(report.files_processed, FILES);
    assert_eq!(loader.current().count(ResourceKind::Tool), FILES * 2 / 5);
    c.bench_function("load_10k_files", |b| b.iter(|| loader.reload_blocking().expect("loads")));
}

criterion_group!(benches, bench);
criterion_main!(benches);
