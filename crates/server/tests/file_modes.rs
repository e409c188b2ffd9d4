//! The server keeps its data to its owner whatever the umask: started under umask 022,
//! it creates its data directory 0700 and every file in it (the SQLite database, its
//! `-wal` and `-shm`, `admin.key`) 0600.
//!
//! This test runs its own `prepaid` process on SQLite whatever the suite's backend,
//! since it looks at the database files, and without `PREPAID_ADMIN_KEY`, so that the
//! server writes `admin.key`.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

/// Kills the server when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The permission bits of `path`.
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[tokio::test]
async fn the_data_directory_and_its_files_are_the_owners_alone() {
    let parent = tempfile::tempdir().expect("temp dir");
    let data = parent.path().join("nested").join("prepaid-data");
    let log = parent.path().join("server.log");
    let mut command = Command::new("sh");
    command
        .args([
            "-c",
            r#"umask 022 && exec "$0" serve --listen 127.0.0.1:0 --data-dir "$1""#,
        ])
        .arg(env!("CARGO_BIN_EXE_prepaid"))
        .arg(&data)
        .env_remove("PREPAID_ADMIN_KEY")
        .env_remove("PREPAID_DATABASE_URL");
    let (child, line) = launch_process(command, std::fs::File::create(&log).expect("log"));
    let server = Running(child);
    let line = line.unwrap_or_else(|| {
        panic!(
            "prepaid exited; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    let base = line
        .trim_end()
        .strip_prefix("prepaid listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let secret = std::fs::read_to_string(data.join("admin.key")).expect("admin.key");
    let admin = Api::new(&base, Auth::Bearer(secret.trim().to_owned()));
    // A write, so that the write-ahead log and its index are there.
    admin.create_customer("acme").await;

    let mut seen = Vec::new();
    for dir in [data.as_path(), data.parent().expect("parent")] {
        assert_eq!(mode(dir), 0o700, "{} is {:o}", dir.display(), mode(dir));
    }
    for entry in std::fs::read_dir(&data).expect("read data dir") {
        let path = entry.expect("entry").path();
        let bits = mode(&path);
        assert_eq!(
            bits & 0o077,
            0,
            "{} is {bits:o}: group or others may use it",
            path.display()
        );
        seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    seen.sort();
    for want in [
        "admin.key",
        "prepaid.sqlite3",
        "prepaid.sqlite3-shm",
        "prepaid.sqlite3-wal",
    ] {
        assert!(seen.iter().any(|s| s == want), "{want} missing: {seen:?}");
    }
    drop(server);
}
