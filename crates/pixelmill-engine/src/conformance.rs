//! PngSuite conformance: corrupt files are rejected cleanly and every valid file decodes to the
//! pixels Pillow (an independent decoder) produces; see testdata/pngsuite/make_reference.py.

use std::collections::HashSet;
use std::fs;

use crate::decode::decode;
use crate::{inspect, Limits};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/pngsuite");

/// Files where Pillow (13.0) ignores the tRNS colour key, so its reference is fully opaque while the
/// PNG spec (and we) make the keyed pixels transparent. Compared with our alpha forced to opaque,
/// after checking that we did make some pixels transparent.
const PILLOW_IGNORES_TRNS: &[(&str, &str)] = &[(
    "tbbn0g04.png",
    "Pillow compares the 4-bit key against samples already scaled to 8 bits",
)];

fn png_names() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".png"))
        .collect();
    names.sort();
    names
}

#[test]
fn corrupt_files_are_rejected_without_panicking() {
    let corrupt: Vec<String> = png_names()
        .into_iter()
        .filter(|n| n.starts_with('x'))
        .collect();
    assert!(
        corrupt.len() >= 10,
        "expected the x*.png files, found {corrupt:?}"
    );
    for name in corrupt {
        let bytes = fs::read(format!("{DIR}/{name}")).unwrap();
        match inspect(&bytes, &Limits::default()) {
            Ok(info) => panic!("{name} was accepted as {info:?}"),
            Err(e) => assert!(
                matches!(e.code(), "corrupt_image" | "unsupported_format"),
                "{name}: {e}"
            ),
        }
    }
}

#[test]
fn valid_files_match_the_pillow_reference() {
    let reference = fs::read_to_string(format!("{DIR}/reference.txt")).unwrap();
    let mut seen = HashSet::new();
    let mut failures = Vec::new();
    for line in reference.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let [name, width, height, digest, mode] = fields[..] else {
            panic!("malformed reference line {line:?}");
        };
        seen.insert(name.to_owned());
        let bytes = fs::read(format!("{DIR}/{name}")).unwrap();
        let image = match decode(&bytes, &Limits::default(), |_, _| 1.0) {
            Ok(d) => d.image,
            Err(e) => {
                failures.push(format!("{name}: rejected: {e}"));
                continue;
            }
        };
        if image.dimensions() != (width.parse().unwrap(), height.parse().unwrap()) {
            failures.push(format!(
                "{name}: size {:?}, expected {width}x{height}",
                image.dimensions()
            ));
            continue;
        }
        let mut ours = image.into_rgba().into_raw();
        if PILLOW_IGNORES_TRNS.iter().any(|(n, _)| *n == name) {
            if !ours.chunks_exact(4).any(|px| px[3] == 0) {
                failures.push(format!("{name}: tRNS key made nothing transparent"));
            }
            ours.chunks_exact_mut(4).for_each(|px| px[3] = 255);
        }
        if mode == "exact" {
            if pixelmill_core::sha256_hex(&ours) != digest {
                failures.push(format!("{name}: pixels differ from Pillow"));
            }
            continue;
        }
        let theirs = fs::read(format!("{DIR}/raw/{}.rgba", &digest[..16])).unwrap();
        assert_eq!(
            pixelmill_core::sha256_hex(&theirs),
            digest,
            "{name}: raw file stale"
        );
        let worst = ours
            .chunks_exact(4)
            .zip(theirs.chunks_exact(4))
            .flat_map(|(a, b)| (0..4).map(move |c| a[c].abs_diff(b[c])))
            .max()
            .unwrap();
        if worst > 1 {
            failures.push(format!(
                "{name}: a channel differs by {worst} (16-bit allows 1)"
            ));
        }
    }
    let unlisted: Vec<String> = png_names()
        .into_iter()
        .filter(|n| !n.starts_with('x') && !seen.contains(n))
        .collect();
    assert!(
        unlisted.is_empty(),
        "no reference for {unlisted:?}; rerun make_reference.py"
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
