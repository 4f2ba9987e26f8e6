//! `pixelmill process`: the engine on a file, offline.

use anyhow::{Context, Result};
use clap::Args;
use pixelmill_core::{IccMode, OutputSpec, PipelineStep};
use std::path::PathBuf;

#[derive(Args)]
pub struct ProcessArgs {
    /// Input image (format sniffed from its bytes)
    input: PathBuf,
    /// Output file; its extension picks the format unless --format is given
    #[arg(short, long)]
    output: PathBuf,
    /// Pipeline in compact form, e.g. 'resize:width=300|sepia|expr:expr="r = 255 - r"'
    #[arg(long, default_value = "")]
    ops: String,
    /// Output format: jpeg, png, webp, gif, avif, tiff, bmp or original
    #[arg(long)]
    format: Option<String>,
    /// Quality 1-100 for lossy formats
    #[arg(long)]
    quality: Option<u8>,
    /// Progressive JPEG instead of baseline
    #[arg(long)]
    progressive: bool,
    /// PNG compression effort 0 (fastest) to 9 (smallest) [default: the fast setting]
    #[arg(long)]
    compression: Option<u8>,
    /// Keep an embedded ICC profile (embedded in JPEG, PNG, WebP) instead of converting to sRGB
    #[arg(long)]
    keep_icc: bool,
    /// A file standing in for a stored image the pipeline reads, e.g. `--image logo=logo.png`
    /// with `--ops watermark:image=logo`; repeat for several
    #[arg(long = "image", value_name = "ID=PATH", value_parser = image_file)]
    images: Vec<(String, PathBuf)>,
}

fn image_file(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((id, path)) if !id.is_empty() && !path.is_empty() => Ok((id.to_owned(), path.into())),
        _ => Err(format!("expected ID=PATH, e.g. logo=logo.png, got {s:?}")),
    }
}

pub fn process(args: ProcessArgs) -> Result<()> {
    let steps = if args.ops.trim().is_empty() {
        Vec::new()
    } else {
        PipelineStep::parse_compact(&args.ops)?
    };
    let format = match args.format.as_deref() {
        Some(name) => name.to_owned(),
        None => match args.output.extension().and_then(|e| e.to_str()) {
            Some("jpg") => "jpeg".to_owned(),
            Some("tif") => "tiff".to_owned(),
            Some(ext) => ext.to_ascii_lowercase(),
            None => "original".to_owned(),
        },
    };
    let format = crate::output_format(&format)?;
    let output = OutputSpec {
        format,
        quality: args.quality,
        progressive: args.progressive,
        compression: args.compression,
        icc: if args.keep_icc {
            IccMode::Keep
        } else {
            IccMode::Srgb
        },
    };
    pixelmill_engine::check_output(&output).map_err(anyhow::Error::msg)?;
    let mut pipeline = pixelmill_engine::Registry::builtin().compile(&steps)?;
    let limits = pixelmill_engine::Limits::default();
    let referenced: Vec<(String, String)> = pipeline
        .referenced_images()
        .iter()
        .map(|r| (r.id.to_owned(), format!("step {} ({})", r.step, r.op)))
        .collect();
    for (id, step) in referenced {
        let (_, path) = args
            .images
            .iter()
            .find(|(name, _)| *name == id)
            .with_context(|| {
                format!("{step} reads image {id:?}; give its file with --image {id}=PATH")
            })?;
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        pipeline.attach_image(&id, &bytes, &limits)?;
    }
    let input = std::fs::read(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let rendered = pixelmill_engine::process(&input, &pipeline, &output, &limits)?;
    std::fs::write(&args.output, &rendered.bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    println!(
        "{} → {} ({} {}x{}, {} bytes)",
        args.input.display(),
        args.output.display(),
        rendered.format.as_str(),
        rendered.width,
        rendered.height,
        rendered.bytes.len()
    );
    Ok(())
}
