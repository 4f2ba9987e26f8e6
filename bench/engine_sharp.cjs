// sharp peer for the engine benchmarks: one task, N iterations from an in-memory buffer, one JSON
// line on stdout in the same shape as `pixelmill-bench engine`.
// Run by harness.py as: taskset -c 0 node engine_sharp.cjs --task T --input F --iterations N
// with UV_THREADPOOL_SIZE=1 and VIPS_CONCURRENCY=1 in the environment.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { createRequire } = require("node:module");

const nodeDir = process.env.PIXELMILL_BENCH_NODE_DIR;
if (!nodeDir) throw new Error("PIXELMILL_BENCH_NODE_DIR is not set (the harness sets it)");
const sharp = createRequire(path.join(nodeDir, "package.json"))("sharp");

function args() {
  const a = { warmup: 3, iterations: 20 };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i += 2) {
    const k = v[i].replace(/^--/, "").replace(/-/g, "_");
    a[k] = v[i + 1];
  }
  a.iterations = Number(a.iterations);
  a.warmup = Number(a.warmup);
  return a;
}

const TASKS = {
  // 12 MP JPEG -> fit inside 400x400 -> JPEG q80 (sharp uses JPEG shrink-on-load here).
  thumbnail: (buf) => sharp(buf).resize(400, 400, { fit: "inside" }).jpeg({ quality: 80 }).toBuffer(),
  // 1080p JPEG -> 800 wide -> WebP q80.
  webp800: (buf) => sharp(buf).resize({ width: 800 }).webp({ quality: 80 }).toBuffer(),
  // Gaussian blur sigma 5 -> JPEG q80.
  blur5: (buf) => sharp(buf).blur(5).jpeg({ quality: 80 }).toBuffer(),
  // Animated GIF, every frame to 240 wide -> GIF (sharp's default GIF encoder settings).
  gif240: (buf) => sharp(buf, { animated: true }).resize({ width: 240 }).gif().toBuffer(),
  // Invert the colour channels -> PNG.
  invert: (buf) => sharp(buf).negate({ alpha: false }).png().toBuffer(),
  // 400 wide with --kernel (libvips's names), lossless PNG: the quality phase's resampling check.
  kernel400: (buf, a) => sharp(buf).resize({ width: 400, kernel: a.kernel }).png().toBuffer(),
};

function peakRssKb() {
  const m = /VmHWM:\s+(\d+)\s+kB/.exec(fs.readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) : null;
}

async function main() {
  const a = args();
  const run = TASKS[a.task];
  if (!run) throw new Error(`unknown task ${a.task}; known: ${Object.keys(TASKS).join(", ")}`);
  sharp.concurrency(1);
  sharp.cache(false);
  const input = fs.readFileSync(a.input);
  let out;
  for (let i = 0; i < a.warmup; i++) out = await run(input, a);
  const times = [];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < a.iterations; i++) {
    const s = process.hrtime.bigint();
    out = await run(input, a);
    times.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  const totalMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (a.write_output) fs.writeFileSync(a.write_output, out);
  times.sort((x, y) => x - y);
  const ms = totalMs / a.iterations;
  console.log(JSON.stringify({
    tool: "sharp", task: a.task, ms_per_op: +ms.toFixed(3), ops_per_s: +(1000 / ms).toFixed(3),
    peak_rss_kb: peakRssKb(), output_bytes: out.length,
    iterations: a.iterations, ms_median: +times[Math.floor(times.length / 2)].toFixed(3),
    ms_min: +times[0].toFixed(3),
  }));
}

main().catch((e) => { console.error(e && e.stack ? e.stack : e); process.exit(1); });
