//! Hostile files are refused without the process's memory growing with them. This binary holds
//! one test so the peak-RSS reading is not shared with other tests.

mod common;

use common::*;
use compozy_autoload::ErrorCategory;

/// Peak resident memory of this process, in bytes (Linux `VmHWM`).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn billion_laughs() -> String {
    let mut doc =
        String::from("resource: tool\nid: lol\ncommand: x\nargs: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let p = i - 1;
        doc.push_str(&format!("x{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    doc
}

fn deep_nesting(levels: usize) -> String {
    format!("resource: tool\nid: deep\ncommand: x\ninput: {}{}\n", "[".repeat(levels), "]".repeat(levels))
}

#[test]
fn hostile_files_are_rejected_within_bounded_memory() {
    let p = Project::new();
    p.write("bomb.yaml", billion_laughs());
    p.write("deep.yaml", deep_nesting(10_000));
    let big = std::fs::File::create(p.root().join("huge.yaml")).expect("create");
    big.set_len(100 * 1024 * 1024).expect("sparse 100 MB file");
    p.write("fine.yaml", tool("fine"));

    let before = peak_rss();
    let m = metrics();
    let loader = autoloader(&p, lenient(), &m);
    let report = loader.reload_blocking().expect("lenient load applies");
    let after = peak_rss();

    let got: Vec<_> = report.errors.iter().map(|e| (e.file.as_str(), e.category)).collect();
    assert_eq!(
        got,
        [
            ("bomb.yaml", ErrorCategory::Parse),
            ("deep.yaml", ErrorCategory::Parse),
            ("huge.yaml", ErrorCategory::Security)
        ],
        "{:#?}",
        report.errors
    );
    assert!(report.errors[0].message.starts_with("alias replay limit exceeded"), "{}", report.errors[0].message);
    assert_eq!(report.errors[1].message, "recursion limit exceeded");
    assert_eq!(report.errors[2].message, "file is 104857600 bytes, over the 1048576-byte limit");
    assert!(loader.current().tool("fine").is_some());
    assert_eq!(errors_metric(&m, "parse_error"), 2.0);
    assert_eq!(errors_metric(&m, "security_error"), 1.0);
    if let (Some(before), Some(after)) = (before, after) {
        let grew = after.saturating_sub(before);
        assert!(grew < 32 * 1024 * 1024, "peak RSS grew by {grew} bytes");
    }
}
