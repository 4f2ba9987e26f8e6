//! The real servers scripts/test-all provisions (cluster/*), as tests reach them.

/// Whether the MinIO servers of cluster/minio/minio are there (`PIXELMILL_TEST_S3`). Without them
/// S3 tests skip, loudly, unless PIXELMILL_REQUIRE_S3 is set (scripts/test-all sets it, so CI
/// never skips them).
pub fn minio_available() -> bool {
    if std::env::var_os("PIXELMILL_TEST_S3").is_some() {
        return true;
    }
    assert!(
        std::env::var_os("PIXELMILL_REQUIRE_S3").is_none(),
        "PIXELMILL_TEST_S3 is not set: start MinIO with `cluster/minio/minio start 2` and export \
         PIXELMILL_TEST_S3=1, or run scripts/test-all"
    );
    eprintln!("skipped: no MinIO (run scripts/test-all, which starts one)");
    false
}

/// Runs `cluster/<server>/<server> args…` (e.g. `("minio", ["kill-node", "2"])`), panicking if
/// it fails.
pub fn cluster(server: &str, args: &[&str]) {
    cluster_with(server, args, &[]);
}

/// [`cluster`] with `env` added to the script's environment.
pub fn cluster_with(server: &str, args: &[&str], env: &[(&str, &str)]) {
    let script = format!(
        "{}/../../cluster/{server}/{server}",
        env!("CARGO_MANIFEST_DIR")
    );
    let status = std::process::Command::new(&script)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    assert!(status.success(), "{script} {args:?} failed");
}
