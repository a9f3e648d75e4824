//! Records the git commit and the compiler version for `compozy version` and `compozy_build_info`.

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = std::env::var("COMPOZY_COMMIT")
        .ok()
        .or_else(|| output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CPZ_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=CPZ_BUILD_RUSTC={rustc_version}");
    println!("cargo:rerun-if-env-changed=COMPOZY_COMMIT");
    println!("cargo:rerun-if-changed=../../.git/HEAD");
}
