//! The server's files and secrets: started under umask 022, it creates its data
//! directory 0700 and every file in it (the SQLite database, its `-wal` and `-shm`,
//! `admin.key`) 0600; and it takes its secrets from files (`PREPAID_ADMIN_KEY_FILE`,
//! `--database-url-file`), which keeps them out of the process list.
//!
//! These tests run their own `prepaid` processes on SQLite whatever the suite's
//! backend, since they look at the database files and choose how secrets are given.

use crate::common;

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

/// `prepaid serve` on `data` under umask 022, with `args` and `env`, and no secret
/// from the suite's environment.
fn command(data: &Path, args: &[&str], env: &[(&str, &Path)]) -> Command {
    let mut command = Command::new("sh");
    command
        .args([
            "-c",
            r#"umask 022 && exec "$0" serve --listen 127.0.0.1:0 --data-dir "$@""#,
        ])
        .arg(env!("CARGO_BIN_EXE_prepaid"))
        .arg(data)
        .args(args)
        .env_remove("PREPAID_ADMIN_KEY")
        .env_remove("PREPAID_DATABASE_URL");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Starts `command`; its base URL, or `Err` with its log when it exited.
fn start(command: Command, log: &Path) -> Result<(Running, String), String> {
    let (child, line) = launch_process(command, std::fs::File::create(log).expect("log"));
    let server = Running(child);
    let Some(line) = line else {
        return Err(std::fs::read_to_string(log).unwrap_or_default());
    };
    let base = line
        .trim_end()
        .strip_prefix("prepaid listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Ok((server, base))
}

#[tokio::test]
async fn the_data_directory_and_its_files_are_the_owners_alone() {
    let parent = tempfile::tempdir().expect("temp dir");
    let data = parent.path().join("nested").join("prepaid-data");
    let log = parent.path().join("server.log");
    let (server, base) = start(command(&data, &[], &[]), &log)
        .unwrap_or_else(|log| panic!("prepaid exited; log:\n{log}"));
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

#[tokio::test]
async fn secrets_are_read_from_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key_file = dir.path().join("admin-key");
    std::fs::write(&key_file, "file-given-admin-key-0123456789\n").expect("write");
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let env = [("PREPAID_ADMIN_KEY_FILE", key_file.as_path())];
    let (server, base) = start(command(&data, &[], &env), &log)
        .unwrap_or_else(|log| panic!("prepaid exited; log:\n{log}"));
    let admin = Api::new(
        &base,
        Auth::Bearer("file-given-admin-key-0123456789".into()),
    );
    admin.create_customer("acme").await;
    // The key came from the file: none was generated.
    assert!(!data.join("admin.key").exists());
    drop(server);

    // The database URL is read from its file too: this one names no supported backend.
    let url_file = dir.path().join("database-url");
    std::fs::write(&url_file, "mysql://user:hunter2@db/prepaid\n").expect("write");
    let url_arg = url_file.to_str().expect("utf-8 path");
    let refused = start(
        command(&data, &["--database-url-file", url_arg], &env),
        &dir.path().join("refused.log"),
    );
    let Err(log) = refused else {
        panic!("a mysql:// URL from a file was accepted");
    };
    assert!(log.contains("unsupported database URL scheme"), "{log}");
    assert!(
        !log.contains("hunter2"),
        "the log shows the URL's password: {log}"
    );
}
