use pixelmill_testkit::jpeg;
use std::process::Command;

fn pixelmill(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pixelmill"))
        .args(args)
        .output()
        .expect("pixelmill runs")
}

#[test]
fn process_runs_the_engine_offline_and_explains_bad_pipelines() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jpg");
    std::fs::write(&input, jpeg(640, 480)).unwrap();
    let output = dir.path().join("out.webp");
    let ok = pixelmill(&[
        "process",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "--ops",
        "resize:width=320|sepia|expr:expr='r = min(r + 10, 255)'",
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let out = std::fs::read(&output).unwrap();
    assert_eq!(image::guess_format(&out).unwrap(), image::ImageFormat::WebP);
    assert_eq!(
        image::load_from_memory(&out)
            .unwrap()
            .to_rgb8()
            .dimensions(),
        (320, 240)
    );

    let bad = pixelmill(&[
        "process",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "--ops",
        "resize:width=-3",
    ]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("step 0 (resize)") && stderr.contains("width"),
        "{stderr}"
    );
}
