//! The generated HMAC secret file: private, published whole, refused when short.

use std::sync::{Arc, Barrier};

use compozy_auth::secret_file::{SECRET_FILE, SecretError, resolve_hmac_secret};

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn concurrent_first_starts_agree_on_one_complete_secret() {
    const STARTS: usize = 6;
    for round in 0..40 {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let barrier = Arc::new(Barrier::new(STARTS));
        let starts: Vec<_> = (0..STARTS)
            .map(|_| {
                let (barrier, data_dir) = (barrier.clone(), data_dir.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    resolve_hmac_secret(None, &data_dir).map(|s| s.expose().to_owned())
                })
            })
            .collect();
        let secrets: Vec<String> =
            starts.into_iter().map(|t| t.join().expect("thread").expect("every start gets the secret")).collect();
        let on_disk = std::fs::read_to_string(data_dir.join(SECRET_FILE)).expect("file");
        assert!(on_disk.len() >= 32, "round {round}: the file is complete");
        assert!(secrets.iter().all(|s| *s == on_disk), "round {round}: every start uses the published secret");
        let names: Vec<_> = std::fs::read_dir(&data_dir).expect("dir").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(SECRET_FILE)], "round {round}: no temporary file is left");
        #[cfg(unix)]
        {
            assert_eq!(mode(&data_dir.join(SECRET_FILE)), 0o600);
            assert_eq!(mode(&data_dir), 0o700);
        }
    }
}

#[test]
fn a_short_secret_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for content in ["", "\n", "only-31-bytes-long-xxxxxxxxxxxx"] {
        std::fs::write(dir.path().join(SECRET_FILE), content).expect("write");
        let refused = resolve_hmac_secret(None, dir.path());
        assert!(matches!(refused, Err(SecretError::FileTooShort { .. })), "{content:?} must be refused");
        assert_eq!(std::fs::read_to_string(dir.path().join(SECRET_FILE)).expect("kept"), content, "never replaced");
    }
}

#[cfg(unix)]
#[test]
fn an_existing_secret_file_is_narrowed_to_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(SECRET_FILE);
    std::fs::write(&path, "k".repeat(43)).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let secret = resolve_hmac_secret(None, dir.path()).expect("read");
    assert_eq!(secret.expose(), "k".repeat(43));
    assert_eq!(mode(&path), 0o600);
}
