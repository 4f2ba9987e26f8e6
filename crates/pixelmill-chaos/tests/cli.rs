//! The driver's command line, without a cluster: it names its scenarios, and refuses one it
//! does not have before touching anything. (The scenarios themselves run in chaos/run.)

use std::process::Command;

fn chaos(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pixelmill-chaos"))
        .args(args)
        .output()
        .expect("running pixelmill-chaos")
}

#[test]
fn help_lists_the_scenarios() {
    let out = chaos(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for scenario in ["region-kill", "partition", "clock-skew", "--short"] {
        assert!(help.contains(scenario), "{scenario} missing from:\n{help}");
    }
}

#[test]
fn an_unknown_scenario_is_refused_with_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = chaos(&["region-kil", "--out", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no scenario \"region-kil\"") && err.contains("region-kill, partition"),
        "{err}"
    );
}
