use crate::{regions_dir, unique_keyspace};
use std::process::Command;

fn migrate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pixelmill"))
        .arg("migrate")
        .args(args)
        .env_remove("PIXELMILL_META")
        .output()
        .expect("pixelmill runs")
}

/// `pixelmill migrate` builds the keyspace from the region files (hosts, datacenter, every
/// region's replicas), applies each migration once, and refuses what it cannot migrate.
#[test]
fn migrate_applies_the_schema_once_from_the_region_files() {
    let refused = migrate(&["--meta", "embedded"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no schema to migrate"));
    let unknown = migrate(&[
        "--meta",
        "scylla:///ks",
        "--region",
        "mars",
        "--regions-dir",
        &regions_dir(),
    ]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("known regions: ap, eu, us"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );

    let Ok(region) = std::env::var("PIXELMILL_E2E_REGION") else {
        return;
    };
    let url = format!("scylla:///{}", unique_keyspace());
    let args = [
        "--meta",
        &url,
        "--region",
        &region,
        "--regions-dir",
        &regions_dir(),
    ];
    for expected in ["applied: [1, 2, 3, 4]", "applied: []"] {
        let out = migrate(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(expected),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
