//! `pixelmill-bench engine --task T --input F --iterations N`: the engine's side of the bench
//! harness in `bench/`. It runs one task warm, in this process and on this thread, and prints
//! one JSON line in the format the harness's peer scripts (sharp, Pillow) print too.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use pixelmill_core::{OutputFormat, OutputSpec, PipelineStep};
use pixelmill_engine::{process, Limits, Registry};

#[derive(Parser)]
#[command(about = "Times one engine task in-process and prints one JSON line")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one task `iterations` times after warm-up iterations.
    Engine {
        #[arg(long, value_enum)]
        task: Task,
        #[arg(long)]
        input: PathBuf,
        #[arg(long, default_value_t = 20)]
        iterations: u32,
        #[arg(long, default_value_t = 3)]
        warmup: u32,
        /// Also writes the task's output here (for the harness's quality comparison).
        #[arg(long)]
        write_output: Option<PathBuf>,
        /// The resize kernel of `kernel400`: nearest, linear, cubic, mitchell, lanczos2, lanczos3.
        #[arg(long, default_value = "lanczos3")]
        kernel: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Task {
    /// Fit inside 400x400, JPEG q80 (the harness feeds a 12 MP JPEG).
    Thumbnail,
    /// 800 wide, WebP q80.
    Webp800,
    /// Gaussian blur sigma 5, JPEG q80.
    Blur5,
    /// 240 wide, GIF, every frame of an animation.
    Gif240,
    /// 300 wide, JPEG q80: the service benchmark's request, without the HTTP around it.
    Jpeg300,
    /// 400 wide with `--kernel`, lossless PNG: the quality phase's resampling comparison.
    Kernel400,
    /// Invert written as an `expr` program, PNG out.
    ExprInvert,
    /// The built-in invert, PNG out: the baseline for `expr-invert`.
    Invert,
    /// Only the JPEG decode at 1/8 scale by libjpeg-turbo (DCT-scaled): the floor under a
    /// libjpeg-based thumbnailer.
    JpegDecodeFloor,
    /// Only the JPEG decode at 1/8 scale as pixelmill's thumbnail pipeline does it (its own
    /// baseline decoder), to RGB.
    JpegDecodeReduced,
}

impl Task {
    fn name(self) -> &'static str {
        match self {
            Task::Thumbnail => "thumbnail",
            Task::Webp800 => "webp800",
            Task::Blur5 => "blur5",
            Task::Gif240 => "gif240",
            Task::Jpeg300 => "jpeg300",
            Task::Kernel400 => "kernel400",
            Task::ExprInvert => "expr-invert",
            Task::Invert => "invert",
            Task::JpegDecodeFloor => "jpeg-decode-floor",
            Task::JpegDecodeReduced => "jpeg-decode-reduced",
        }
    }

    fn job(self, kernel: &str) -> (String, OutputFormat, Option<u8>) {
        let (ops, format, quality) = match self {
            Task::Kernel400 => {
                return (
                    format!("resize:width=400,kernel={kernel}"),
                    OutputFormat::Png,
                    None,
                )
            }
            Task::Thumbnail => ("resize:width=400,height=400", OutputFormat::Jpeg, Some(80)),
            Task::Webp800 => ("resize:width=800", OutputFormat::Webp, Some(80)),
            Task::Blur5 => ("blur:sigma=5", OutputFormat::Jpeg, Some(80)),
            Task::Gif240 => ("resize:width=240", OutputFormat::Gif, None),
            Task::Jpeg300 => ("resize:width=300", OutputFormat::Jpeg, Some(80)),
            Task::ExprInvert => (
                "expr:expr='r = 255 - r; g = 255 - g; b = 255 - b'",
                OutputFormat::Png,
                None,
            ),
            Task::Invert | Task::JpegDecodeFloor | Task::JpegDecodeReduced => {
                ("invert", OutputFormat::Png, None)
            }
        };
        (ops.to_owned(), format, quality)
    }
}

fn main() -> Result<()> {
    // As the `pixelmill` binary does, so the engine is timed as it runs there.
    pixelmill_engine::keep_freed_buffers_mapped();
    let Command::Engine {
        task,
        input,
        iterations,
        warmup,
        write_output,
        kernel,
    } = Cli::parse().command;
    if iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    let bytes =
        std::fs::read(&input).with_context(|| format!("reading --input {}", input.display()))?;
    let run = runner(task, &kernel, &bytes)?;
    let mut output = Vec::new();
    for _ in 0..warmup {
        output = run()?;
    }
    let started = Instant::now();
    for _ in 0..iterations {
        output = run()?;
    }
    let ms_per_op = started.elapsed().as_secs_f64() * 1000.0 / f64::from(iterations);
    if let Some(path) = write_output {
        std::fs::write(&path, &output).with_context(|| format!("writing {}", path.display()))?;
    }
    let line = serde_json::json!({
        "tool": "pixelmill",
        "task": task.name(),
        "ms_per_op": ms_per_op,
        "ops_per_s": 1000.0 / ms_per_op,
        "peak_rss_kb": peak_rss_kb(),
        "output_bytes": output.len(),
    });
    println!("{line}");
    Ok(())
}

type Run<'a> = Box<dyn Fn() -> Result<Vec<u8>> + 'a>;

fn runner<'a>(task: Task, kernel: &str, bytes: &'a [u8]) -> Result<Run<'a>> {
    if let Task::JpegDecodeFloor = task {
        return Ok(Box::new(move || {
            let mut decoder = mozjpeg::Decompress::new_mem(bytes)?;
            decoder.scale(1);
            let mut started = decoder.rgb()?;
            let pixels = started.read_scanlines::<u8>()?;
            started.finish()?;
            Ok(pixels)
        }));
    }
    if let Task::JpegDecodeReduced = task {
        let limits = Limits::default();
        return Ok(Box::new(move || {
            Ok(pixelmill_engine::decode_jpeg_scaled(bytes, 1, &limits)?)
        }));
    }
    let (ops, format, quality) = task.job(kernel);
    let steps = PipelineStep::parse_compact(&ops).context("the task's pipeline")?;
    let pipeline = Registry::builtin()
        .compile(&steps)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let output = OutputSpec {
        format,
        quality,
        ..OutputSpec::default()
    };
    let limits = Limits::default();
    Ok(Box::new(move || {
        Ok(process(bytes, &pipeline, &output, &limits)?.bytes)
    }))
}

/// The process's peak resident set, from the kernel's high-water mark.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
