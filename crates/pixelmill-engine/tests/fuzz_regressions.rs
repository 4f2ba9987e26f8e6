//! Inputs that once crashed or panicked a fuzz target (see fuzz/README.md) stay here as
//! regressions: each must come back from `inspect`, and from `process` when inspect accepts it,
//! without panicking. An `Err` is fine, that is the clean rejection we want.
//!
//! Files are named `<target>-<short-description>.<ext>`; a `pipeline-*` file is a fuzzed
//! pipeline (see `fuzz/src/lib.rs`), run against a small PNG instead of being decoded.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use pixelmill_core::{OutputSpec, PipelineStep};
use pixelmill_engine::{inspect, process, Limits, Registry};

/// The limits the fuzz targets use.
const LIMITS: Limits = Limits {
    max_pixels: 4_000_000,
    max_frames: 50,
    max_total_pixels: 40_000_000,
};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn regressions() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(testdata("fuzz-regressions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"))
        .collect();
    files.sort();
    files
}

fn run_image(bytes: &[u8]) {
    let resize = PipelineStep::parse_compact("resize:width=48,height=48,fit=contain").unwrap();
    let pipeline = Registry::builtin().compile(&resize).unwrap();
    if inspect(bytes, &LIMITS).is_ok() {
        let _ = process(bytes, &pipeline, &OutputSpec::default(), &LIMITS);
    }
}

fn run_pipeline(bytes: &[u8]) {
    let steps = if let Some((&1, program)) = bytes.split_first() {
        let mut params = serde_json::Map::new();
        let program = String::from_utf8_lossy(program).into_owned();
        params.insert("expr".into(), program.into());
        vec![PipelineStep {
            op: "expr".into(),
            params,
        }]
    } else {
        let Ok(text) = std::str::from_utf8(bytes) else {
            return;
        };
        match PipelineStep::parse_compact(text) {
            Ok(steps) => steps,
            Err(_) => return,
        }
    };
    let Ok(pipeline) = Registry::builtin().compile(&steps) else {
        return;
    };
    for (w, h) in [(1, 1), (32, 32), (7071, 7071), (50_000_000, 1)] {
        let _ = pipeline.estimate_cost(w, h, 1, pixelmill_core::ImageFormat::Webp);
    }
    let input = std::fs::read(testdata("pngsuite/basn6a08.png")).unwrap();
    let limits = Limits {
        max_pixels: 128 * 128,
        max_frames: 1,
        max_total_pixels: 128 * 128,
    };
    let _ = process(&input, &pipeline, &OutputSpec::default(), &limits);
}

#[test]
fn fuzz_regressions_return_without_panicking() {
    let files = regressions();
    assert!(!files.is_empty(), "no files in testdata/fuzz-regressions");
    let mut panicked = Vec::new();
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if name.starts_with("pipeline-") {
                run_pipeline(&bytes)
            } else {
                run_image(&bytes)
            }
        }));
        if outcome.is_err() {
            panicked.push(name);
        }
    }
    assert!(panicked.is_empty(), "these inputs panicked: {panicked:?}");
}

/// Every image the fuzzers found is refused at upload with a client error, so no job can later
/// trip over it: oversized frame headers and chunks before anything is allocated, and animations
/// whose later frames are broken because upload decodes every frame.
#[test]
fn every_image_finding_is_refused_at_upload() {
    for path in regressions() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("pipeline-") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let err = inspect(&bytes, &LIMITS).expect_err(&name);
        assert!(
            matches!(
                err.code(),
                "corrupt_image" | "image_too_large" | "unsupported_format"
            ),
            "{name}: {err}"
        );
    }
}
