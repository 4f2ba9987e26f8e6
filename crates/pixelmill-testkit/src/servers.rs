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
        "PIXELMILL_TEST_S3 is not set: start MinIO with `cluster/minio/minio start 3` and export \
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

/// The repository's region files (regions/), which say where cluster/'s servers listen.
pub fn regions() -> pixelmill_regions::Regions {
    let dir = regions_dir();
    pixelmill_regions::Regions::load(&dir).unwrap_or_else(|e| panic!("{e}"))
}

/// The repository's regions/ directory.
pub fn regions_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../regions")
}

/// The region of the test cluster's node `k` (datacenter `dc<k>`, MinIO server `k`).
pub fn test_region(k: u8) -> pixelmill_regions::Region {
    let dc = format!("dc{k}");
    regions()
        .iter()
        .find(|r| r.datacenter == dc)
        .unwrap_or_else(|| panic!("no region file in regions/ has datacenter {dc}"))
        .clone()
}

/// Cassandra node `k`'s CQL address (datacenter `dc<k>`), as regions/ gives it.
pub fn cql(k: u8) -> String {
    test_region(k).metadata.cql[0].clone()
}

/// MinIO server `k`'s S3 endpoint (`http://host:port`), from its region's bucket URL.
pub fn s3_endpoint(k: u8) -> String {
    let region = test_region(k);
    let url = &region
        .blobs
        .as_ref()
        .expect("a test region names a bucket")
        .s3;
    let (_, endpoint) = url
        .split_once("endpoint=")
        .unwrap_or_else(|| panic!("{url} names no endpoint"));
    endpoint.split('&').next().unwrap().to_owned()
}
