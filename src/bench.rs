//! Benchmarks of compiled layers, fused against unfused: warm-up, then the median of repeated
//! runs; both checked against the oracle; a table, JSON, and an SVG plot for sweeps.

use crate::compiled::{Backend, CompiledLayer, Target};
use crate::gpu::median_device_us;
use crate::random::random_inputs;
use crate::{Error, Layer};
use ssmc_ir::DType;
use ssmc_kernel::Schedule;
use ssmc_opt::Fusion;
use ssmc_runtime::TensorMap;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

/// One measured configuration.
#[derive(Clone, Debug)]
pub struct BenchResult {
    /// Dim sizes.
    pub dims: BTreeMap<String, usize>,
    /// Median time of the fused plan.
    pub fused: Duration,
    /// Median time of the unfused plan.
    pub unfused: Duration,
    /// Median time of the fused plan writing into the outputs of the run before
    /// ([`CompiledLayer::run_into`]), its intermediates (a backward has some) kept.
    pub fused_reused: Duration,
    /// Median time of the unfused plan with its intermediates kept between runs
    /// ([`CompiledLayer::keep_buffers`]) and its outputs reused.
    pub unfused_reused: Duration,
    /// JIT time of the fused plan's kernels.
    pub compile_fused: Duration,
    /// JIT time of the unfused plan's kernels.
    pub compile_unfused: Duration,
    /// Bytes the fused plan moves (each input once, each output once): the floor.
    pub floor_bytes: u64,
    /// Bytes the unfused plan moves.
    pub unfused_bytes: u64,
    /// Elements of the largest value the layer computes (for Mamba: one state update each).
    pub updates: u64,
    /// Largest |compiled - oracle| over both plans on the sample shape.
    pub max_abs_err: f64,
    /// The sample shape the oracle check ran at.
    pub sample_dims: BTreeMap<String, usize>,
    /// Largest |fused - unfused| at the full shape.
    pub fused_vs_unfused: f64,
}

/// How to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Storage dtype of the random inputs.
    pub dtype: DType,
    /// Timed runs per plan (after one warm-up); the median is reported.
    pub reps: usize,
    /// Seed for the inputs.
    pub seed: u64,
    /// GPU: the fused plan's schedule, instead of the autotuner's choice.
    pub schedule: Option<crate::GpuSchedule>,
    /// CPU: the schedule of both plans (the default: [`Schedule::cpu_default`]).
    pub cpu_schedule: Schedule,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The median of `reps` runs of `c` after a warm-up: each allocating its outputs afresh, or
/// (`reuse`) writing into the outputs of the one before, as a generation loop reuses its state
/// (see [`CompiledLayer::run_into`]).
fn time_runs(c: &CompiledLayer, x: &TensorMap, reps: usize, reuse: bool) -> Result<(Duration, TensorMap), Error> {
    let out = c.run(x)?; // warm-up (and JIT)
    let mut reused = out.clone();
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        if reuse {
            c.run_into(x, &mut reused)?;
        } else {
            std::hint::black_box(c.run(x)?);
        }
        times.push(t.elapsed());
    }
    Ok((median(times), out))
}

fn max_diff(a: &TensorMap, b: &TensorMap) -> f64 {
    a.iter()
        .map(|(n, t)| {
            t.to_f64().iter().zip(b[n].to_f64()).map(|(x, y)| if x == &y { 0.0 } else { (x - y).abs() }).fold(0.0, f64::max)
        })
        .fold(0.0, f64::max)
}

/// The sample the oracle checks: the same dims, with `batch` cut to 1 and `dim` to 8.
fn sample_of(dims: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
    dims.iter()
        .map(|(k, &v)| {
            let cut = match k.as_str() {
                "batch" => v.min(1),
                "dim" => v.min(8),
                _ => v,
            };
            (k.clone(), cut)
        })
        .collect()
}

/// Measures `layer` fused and unfused at `dims` on `backend`.
pub fn bench(layer: &Layer, backend: Backend, dims: &BTreeMap<String, usize>, opts: &BenchOptions) -> Result<BenchResult, Error> {
    let target = match backend {
        Backend::Cpu => Target::Cpu { schedule: opts.cpu_schedule, keep_buffers: false },
        Backend::Cuda => Target::Cuda { schedule: opts.schedule },
    };
    let fused = layer.compile_for(target, Fusion::On)?;
    let unfused = layer.compile_for(target, Fusion::Off)?;
    let x = random_inputs(layer.graph(), dims, opts.dtype, opts.seed)?;
    let compile_fused = fused.compile_time(&x)?;
    let compile_unfused = unfused.compile_time(&x)?;
    let (tf, of) = time_runs(&fused, &x, opts.reps, false)?;
    let (tu, ou) = time_runs(&unfused, &x, opts.reps, false)?;
    // (a fused plan may have intermediates too, a backward's does: kept, as the unfused ones)
    let fused = match backend {
        Backend::Cpu => fused.keep_buffers(true)?,
        Backend::Cuda => fused,
    };
    let (fused_reused, _) = time_runs(&fused, &x, opts.reps, true)?;
    let unfused = match backend {
        Backend::Cpu => unfused.keep_buffers(true)?,
        Backend::Cuda => unfused,
    };
    let (unfused_reused, _) = time_runs(&unfused, &x, opts.reps, true)?;
    let sample_dims = sample_of(dims);
    let xs = random_inputs(layer.graph(), &sample_dims, opts.dtype, opts.seed ^ 1)?;
    let want = layer.eval(&xs)?;
    let max_abs_err = max_diff(&fused.run(&xs)?, &want).max(max_diff(&unfused.run(&xs)?, &want));
    let sizes: Vec<usize> = layer.graph().dims().map(|(_, n)| dims.get(n).copied().unwrap_or(1)).collect();
    let floor_bytes = fused.plan().bytes(&sizes);
    let unfused_bytes = unfused.plan().bytes(&sizes);
    let updates = layer
        .graph()
        .nodes()
        .iter()
        .map(|n| n.shape.dims().iter().map(|d| sizes[d.index()] as u64).product::<u64>())
        .max()
        .unwrap_or(1);
    Ok(BenchResult {
        dims: dims.clone(),
        fused: tf,
        unfused: tu,
        fused_reused,
        unfused_reused,
        compile_fused,
        compile_unfused,
        floor_bytes,
        unfused_bytes,
        updates,
        max_abs_err,
        sample_dims,
        fused_vs_unfused: max_diff(&of, &ou),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn dims_text(d: &BTreeMap<String, usize>) -> String {
    d.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

impl BenchResult {
    /// A readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let gbs = |t: Duration| self.floor_bytes as f64 / t.as_secs_f64() / 1e9;
        let ns = |t: Duration| t.as_secs_f64() * 1e9 / self.updates as f64;
        let _ = writeln!(s, "dims {}   ({} updates, floor {:.1} MB)", dims_text(&self.dims), self.updates, self.floor_bytes as f64 / 1e6);
        let _ = writeln!(s, "plan      buffers   time (ms)   ns/update   GB/s of floor   JIT (ms)");
        let rows = [
            ("fused", "fresh", self.fused, self.compile_fused),
            ("fused", "reused", self.fused_reused, self.compile_fused),
            ("unfused", "fresh", self.unfused, self.compile_unfused),
            ("unfused", "reused", self.unfused_reused, self.compile_unfused),
        ];
        for (plan, buffers, t, jit) in rows {
            let _ = writeln!(s, "{plan:<9} {buffers:<7} {:>11.3}   {:>9.4}   {:>13.2}   {:>8.2}", ms(t), ns(t), gbs(t), ms(jit));
        }
        let ratio = |u: Duration, f: Duration| u.as_secs_f64() / f.as_secs_f64();
        let _ = writeln!(
            s,
            "speedup   {:.1}x with fresh buffers, {:.1}x with reused ones (unfused moves {:.1}x the bytes)",
            ratio(self.unfused, self.fused),
            ratio(self.unfused_reused, self.fused_reused),
            self.unfused_bytes as f64 / self.floor_bytes as f64
        );
        let _ = writeln!(s, "(fresh: every run allocates its outputs and intermediates; reused: outputs written into the last run's, intermediates kept)");
        let _ = writeln!(
            s,
            "max |err| vs oracle {:.3e} (at {}), |fused - unfused| {:.3e}",
            self.max_abs_err,
            dims_text(&self.sample_dims),
            self.fused_vs_unfused
        );
        s
    }

    /// One JSON object.
    pub fn json(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
        format!(
            "{{\"dims\": {{{}}}, \"fused_ms\": {}, \"unfused_ms\": {}, \"speedup\": {}, \"fused_reused_ms\": {}, \"unfused_reused_ms\": {}, \"speedup_reused\": {}, \"compile_ms\": {}, \"compile_unfused_ms\": {}, \"ns_per_update_fused\": {}, \"ns_per_update_unfused\": {}, \"floor_bytes\": {}, \"unfused_bytes\": {}, \"fused_gbps\": {}, \"max_abs_err\": {:e}, \"fused_vs_unfused\": {:e}}}",
            dims.join(", "),
            ms(self.fused),
            ms(self.unfused),
            self.unfused.as_secs_f64() / self.fused.as_secs_f64(),
            ms(self.fused_reused),
            ms(self.unfused_reused),
            self.unfused_reused.as_secs_f64() / self.fused_reused.as_secs_f64(),
            ms(self.compile_fused),
            ms(self.compile_unfused),
            self.fused.as_secs_f64() * 1e9 / self.updates as f64,
            self.unfused.as_secs_f64() * 1e9 / self.updates as f64,
            self.floor_bytes,
            self.unfused_bytes,
            self.floor_bytes as f64 / self.fused.as_secs_f64() / 1e9,
            self.max_abs_err,
            self.fused_vs_unfused
        )
    }
}

/// `len=256..8192`: the dim and the sizes from `lo` to `hi`, doubling.
pub fn parse_sweep(text: &str) -> Result<(String, Vec<usize>), Error> {
    let bad = || Error::Usage(format!("--sweep: expected `dim=lo..hi` with 0 < lo <= hi, found `{text}`"));
    let (dim, range) = text.split_once('=').ok_or_else(bad)?;
    let (lo, hi) = range.split_once("..").ok_or_else(bad)?;
    let (lo, hi): (usize, usize) = (lo.trim().parse().map_err(|_| bad())?, hi.trim().parse().map_err(|_| bad())?);
    if lo == 0 || lo > hi {
        return Err(bad());
    }
    let mut v = vec![];
    let mut at = lo;
    while at < hi {
        v.push(at);
        at *= 2;
    }
    v.push(hi);
    Ok((dim.trim().to_string(), v))
}

/// A line plot of time against the swept dim, fused and unfused (log-log): solid lines with
/// fresh buffers, dashed with reused ones.
pub fn svg(dim: &str, results: &[BenchResult], title: &str) -> String {
    let (w, h, m) = (640.0, 400.0, 60.0);
    type Pick = fn(&BenchResult) -> Duration;
    let lines: [(&str, &str, &str, Pick); 4] = [
        ("fused", "#1f77b4", "", |r| r.fused),
        ("fused, reused buffers", "#1f77b4", "6 4", |r| r.fused_reused),
        ("unfused", "#d62728", "", |r| r.unfused),
        ("unfused, reused buffers", "#d62728", "6 4", |r| r.unfused_reused),
    ];
    let xs: Vec<f64> = results.iter().map(|r| r.dims[dim] as f64).collect();
    let all: Vec<f64> = results.iter().flat_map(|r| lines.iter().map(|l| ms((l.3)(r)))).collect();
    let (x0, x1) = (xs.iter().cloned().fold(f64::INFINITY, f64::min).log10(), xs.iter().cloned().fold(0.0, f64::max).log10());
    let (y0, y1) = (all.iter().cloned().fold(f64::INFINITY, f64::min).log10() - 0.1, all.iter().cloned().fold(0.0, f64::max).log10() + 0.1);
    let px = |x: f64| m + (x.log10() - x0) / (x1 - x0).max(1e-9) * (w - 2.0 * m);
    let py = |y: f64| h - m - (y.log10() - y0) / (y1 - y0).max(1e-9) * (h - 2.0 * m);
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n");
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(s, "<text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">{title}</text>", w / 2.0);
    let _ = writeln!(s, "<line x1=\"{m}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>", h - m, w - m, h - m);
    let _ = writeln!(s, "<line x1=\"{m}\" y1=\"{m}\" x2=\"{m}\" y2=\"{}\" stroke=\"black\"/>", h - m);
    let _ = writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{dim} (log scale)</text>", w / 2.0, h - 20.0);
    let _ = writeln!(s, "<text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">time, ms (log scale)</text>", h / 2.0, h / 2.0);
    for (x, r) in xs.iter().zip(results) {
        let _ = writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>", px(*x), h - m + 16.0, r.dims[dim]);
    }
    for (i, (name, color, dash, pick)) in lines.iter().enumerate() {
        let pts: Vec<String> = xs.iter().zip(results).map(|(x, r)| format!("{:.1},{:.1}", px(*x), py(ms(pick(r))))).collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\" points=\"{}\"/>",
            pts.join(" ")
        );
        for (x, r) in xs.iter().zip(results) {
            let t = ms(pick(r));
            let _ = writeln!(s, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"><title>{name} {t:.3} ms</title></circle>", px(*x), py(t));
            // values are printed beside the fresh-buffer lines only (the plot stays readable)
            if dash.is_empty() {
                let _ = writeln!(s, "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"{color}\">{t:.2}</text>", px(*x) + 4.0, py(t) - 4.0);
            }
        }
        let ly = m + 10.0 + 16.0 * i as f64;
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/>",
            m + 16.0,
            ly - 4.0,
            m + 46.0,
            ly - 4.0
        );
        // top left: the times grow to the right
        let _ = writeln!(s, "<text x=\"{}\" y=\"{ly}\" fill=\"{color}\">{name}</text>", m + 52.0);
    }
    s.push_str("</svg>\n");
    s
}

/// One GPU measurement: device times (CUDA events, L2 flushed before every call) of both plans,
/// and the two ceilings measured in the same run.
#[derive(Clone, Debug)]
pub struct GpuBenchResult {
    /// Dim sizes.
    pub dims: BTreeMap<String, usize>,
    /// Input dtype.
    pub dtype: DType,
    /// Median device time of the fused plan, microseconds.
    pub fused_us: f64,
    /// Median device time of the unfused plan, microseconds.
    pub unfused_us: f64,
    /// Median host time of one fused call from Rust (queueing the launches and waiting for
    /// them, inputs already on the device, L2 warm), microseconds.
    pub fused_host_us: f64,
    /// Device time per call of the fused plan with `STREAM` calls queued back to back between
    /// two events (no flush between them: what a generation loop sees per step), microseconds.
    pub fused_stream_us: f64,
    /// The same for an empty kernel.
    pub empty_stream_us: f64,
    /// Device time per call of the fused plan with `STREAM` calls recorded into one CUDA graph
    /// and replayed (no host between the launches), microseconds; NaN where capture failed.
    pub fused_graph_us: f64,
    /// The same for an empty kernel.
    pub empty_graph_us: f64,
    /// Bytes the fused plan moves (its floor in traffic).
    pub floor_bytes: u64,
    /// Bytes the unfused plan moves.
    pub unfused_bytes: u64,
    /// exp-family evaluations the fused kernel makes.
    pub exp_evals: u64,
    /// Device-to-device copy bandwidth measured now, GB/s (bytes read + written).
    pub copy_gbps: f64,
    /// `ex2.approx` evaluations per second measured now.
    pub ex2_per_s: f64,
    /// Device microseconds of an empty kernel timed the same way (launch and event overhead:
    /// no kernel measured like this takes less).
    pub empty_us: f64,
    /// Largest |gpu - oracle| over both plans on the sample shape.
    pub max_abs_err: f64,
    /// The autotuner's measurements for the fused plan: (schedule, device us), chosen first
    /// (none where `--schedule` chose).
    pub tuning: Vec<(String, f64)>,
    /// The fused plan's schedule as it ran: the autotuner's choice, or `--schedule`'s.
    pub schedule: String,
    /// The schedule the autotuner chose for the unfused plan.
    pub unfused_schedule: String,
}

impl GpuBenchResult {
    /// `max(bytes / copy bandwidth, exp evaluations / ex2 rate)`, microseconds.
    pub fn floor_us(&self) -> f64 {
        (self.floor_bytes as f64 / (self.copy_gbps * 1e9)).max(self.exp_evals as f64 / self.ex2_per_s) * 1e6
    }

    /// A readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let gbs = |us: f64, bytes: u64| bytes as f64 / (us * 1e-6) / 1e9;
        let _ = writeln!(
            s,
            "dims {} ({}), copy {:.0} GB/s, ex2 {:.3e}/s, floor {:.1} us, empty kernel {:.1} us",
            dims_text(&self.dims),
            self.dtype,
            self.copy_gbps,
            self.ex2_per_s,
            self.floor_us(),
            self.empty_us
        );
        let _ = writeln!(s, "plan      device (us)   GB/s   x floor   host (us)");
        let _ = writeln!(s, "fused     {:>11.1}   {:>5.0}   {:>7.2}   {:>9.1}", self.fused_us, gbs(self.fused_us, self.floor_bytes), self.fused_us / self.floor_us(), self.fused_host_us);
        let _ = writeln!(s, "unfused   {:>11.1}   {:>5.0}   {:>7.2}   {:>9}   ({})", self.unfused_us, gbs(self.unfused_us, self.unfused_bytes), self.unfused_us / self.floor_us(), "", self.unfused_schedule);
        let _ = writeln!(s, "speedup   {:.1}x; max |err| vs oracle {:.3e}", self.unfused_us / self.fused_us, self.max_abs_err);
        let _ = writeln!(
            s,
            "back to back ({STREAM} calls between two events): fused {:.2} us per call, empty kernel {:.2} us",
            self.fused_stream_us, self.empty_stream_us
        );
        let _ = writeln!(
            s,
            "in one CUDA graph ({STREAM} calls replayed): fused {:.2} us per call, empty kernel {:.2} us",
            self.fused_graph_us, self.empty_graph_us
        );
        s
    }

    /// One JSON object.
    pub fn json(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
        format!(
            "{{\"dims\": {{{}}}, \"dtype\": \"{}\", \"schedule\": \"{}\", \"tuning\": \"{}\", \"unfused_schedule\": \"{}\", \"fused_us\": {:.2}, \"unfused_us\": {:.2}, \"fused_host_us\": {:.2}, \"fused_stream_us\": {:.3}, \"empty_stream_us\": {:.3}, \"fused_graph_us\": {}, \"empty_graph_us\": {}, \"speedup\": {:.3}, \"floor_us\": {:.2}, \"copy_gbps\": {:.1}, \"ex2_per_s\": {:.4e}, \"empty_us\": {:.2}, \"floor_bytes\": {}, \"exp_evals\": {}, \"max_abs_err\": {:e}}}",
            dims.join(", "),
            self.dtype,
            self.schedule,
            self.tuning.iter().map(|(n, t)| format!("{n} {t:.1} us")).collect::<Vec<_>>().join(", "),
            self.unfused_schedule,
            self.fused_us,
            self.unfused_us,
            self.fused_host_us,
            self.fused_stream_us,
            self.empty_stream_us,
            json_num(self.fused_graph_us),
            json_num(self.empty_graph_us),
            self.unfused_us / self.fused_us,
            self.floor_us(),
            self.copy_gbps,
            self.ex2_per_s,
            self.empty_us,
            self.floor_bytes,
            self.exp_evals,
            self.max_abs_err
        )
    }
}

/// `x` with 3 decimals, or `null` where it is not a number (JSON has no NaN).
fn json_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "null".to_string()
    }
}

/// Calls queued back to back for the stream timings.
const STREAM: usize = 100;

/// Device microseconds per call of `work` with [`STREAM`] calls between two events (median of
/// 3 such runs; `before` runs ahead of each).
fn stream_us(gpu: &ssmc_ptx::Gpu, before: impl FnMut() -> Result<(), Error>, mut work: impl FnMut() -> Result<(), Error>) -> Result<f64, Error> {
    let total = median_device_us(gpu, 3, before, || {
        for _ in 0..STREAM {
            work()?;
        }
        Ok(())
    })?;
    Ok(total / STREAM as f64)
}

/// Device microseconds per call of `work` with [`STREAM`] calls recorded into one CUDA graph,
/// replayed between two events (median of 3; `before` runs ahead of each replay).
fn graph_us(gpu: &ssmc_ptx::Gpu, before: impl FnMut() -> Result<(), Error>, mut work: impl FnMut() -> Result<(), Error>) -> Result<f64, Error> {
    gpu.sync()?;
    gpu.begin_capture()?;
    let recorded = (0..STREAM).try_for_each(|_| work());
    // the capture ends whatever happened inside it
    let graph = gpu.end_capture();
    recorded?;
    let graph = graph?;
    gpu.replay(&graph)?;
    let total = median_device_us(gpu, 3, before, || Ok(gpu.replay(&graph)?))?;
    Ok(total / STREAM as f64)
}

/// A PTX kernel of independent `ex2.approx` chains (8 per thread, `ITERS` steps each).
const EX2_ITERS: u64 = 2048;
fn ex2_rate_ptx() -> String {
    let mut body = String::new();
    for k in 0..8 {
        let _ = writeln!(body, "\tneg.f32 %t{k}, %c{k};\n\tex2.approx.ftz.f32 %c{k}, %t{k};");
    }
    format!(
        "{}\n.visible .entry ex2rate(.param .u64 out, .param .u64 rows)\n{{\n\t.reg .f32 %c<8>;\n\t.reg .f32 %t<8>;\n\t.reg .f32 %s;\n\t.reg .u32 %r<4>;\n\t.reg .u64 %rd<6>;\n\t.reg .pred %p;\n\tmov.u32 %r1, %tid.x;\n\tmov.u32 %r2, %ctaid.x;\n\tmov.u32 %r3, %ntid.x;\n\tmad.lo.u32 %r1, %r2, %r3, %r1;\n\tcvt.rn.f32.u32 %s, %r1;\n\tmul.f32 %s, %s, 0f33800000;\n{}\tmov.u64 %rd1, 0;\n$L:\n\tsetp.ge.u64 %p, %rd1, {EX2_ITERS};\n\t@%p bra $D;\n{body}\tadd.u64 %rd1, %rd1, 1;\n\tbra $L;\n$D:\n\tadd.f32 %s, %c0, %c1;\n\tadd.f32 %s, %s, %c2;\n\tadd.f32 %s, %s, %c3;\n\tadd.f32 %s, %s, %c4;\n\tadd.f32 %s, %s, %c5;\n\tadd.f32 %s, %s, %c6;\n\tadd.f32 %s, %s, %c7;\n\tld.param.u64 %rd2, [out];\n\tcvta.to.global.u64 %rd2, %rd2;\n\tcvt.u64.u32 %rd3, %r1;\n\tmad.lo.u64 %rd4, %rd3, 4, %rd2;\n\tst.global.f32 [%rd4], %s;\n\tret;\n}}\n",
        ssmc_ptx::Arch::SM90.header(),
        (0..8).map(|k| format!("\tadd.f32 %c{k}, %s, 0f3{k}000000;\n")).collect::<String>()
    )
}

/// Measures `layer` fused and unfused on the GPU at `dims`.
pub fn bench_cuda(layer: &Layer, dims: &BTreeMap<String, usize>, opts: &BenchOptions) -> Result<GpuBenchResult, Error> {
    let fused = layer.compile_for(Target::Cuda { schedule: opts.schedule }, Fusion::On)?;
    let unfused = layer.compile(Backend::Cuda, Fusion::Off)?;
    let gpu = fused.gpu().ok_or(Error::WrongBackend { what: "bench_cuda", wants: Backend::Cuda, compiled: Backend::Cpu })?;
    let x = random_inputs(layer.graph(), dims, opts.dtype, opts.seed)?;
    // 256 MiB written before every timed call, so no input is served from L2
    let mut flush = gpu.zeros_f32(64 << 20)?;
    // each compiled layer queues its work to its own stream: its marks must go there too
    let mut time = |c: &CompiledLayer, streamed: bool| -> Result<(f64, f64, f64, f64), Error> {
        let gpu = c.gpu().ok_or(Error::WrongBackend { what: "bench_cuda", wants: Backend::Cuda, compiled: Backend::Cpu })?;
        let mut run = c.gpu_run(&x)?;
        run.launch()?;
        gpu.sync()?;
        let dev = median_device_us(gpu, opts.reps.max(3), || gpu.clear(&mut flush), || run.launch())?;
        let stream = if streamed { stream_us(gpu, || Ok(gpu.clear(&mut flush)?), || Ok(run.launch()?))? } else { f64::NAN };
        let graph = if streamed { graph_us(gpu, || Ok(gpu.clear(&mut flush)?), || Ok(run.launch()?)).unwrap_or(f64::NAN) } else { f64::NAN };
        let mut host = Vec::new();
        for _ in 0..opts.reps.max(3) {
            gpu.sync()?;
            let t0 = Instant::now();
            run.launch()?;
            gpu.sync()?;
            host.push(t0.elapsed().as_secs_f64() * 1e6);
        }
        host.sort_by(f64::total_cmp);
        Ok((dev, host[host.len() / 2], stream, graph))
    };
    let (fused_us, fused_host_us, fused_stream_us, fused_graph_us) = time(&fused, true)?;
    let (unfused_us, ..) = time(&unfused, false)?;
    // copy bandwidth: 1 GiB device to device
    let n = 256 << 20;
    let src = gpu.zeros_f32(n)?;
    let mut dst = gpu.zeros_f32(n)?;
    gpu.copy(&src, &mut dst)?;
    let copy_us = median_device_us(gpu, 5, || Ok::<(), Error>(()), || Ok(gpu.copy(&src, &mut dst)?))?;
    let copy_gbps = 2.0 * (n * 4) as f64 / (copy_us * 1e-6) / 1e9;
    // ex2 rate: 8 independent chains per thread
    let threads: u64 = 132 * 2048;
    let module = gpu.load(&ex2_rate_ptx(), &["ex2rate".to_string()])?;
    let out = gpu.zeros_f32(threads as usize)?;
    let ex2_kernel = || Ok::<(), Error>(gpu.launch(&module, 0, &[&out], &[threads as usize * 4], threads, 1, 256)?);
    ex2_kernel()?;
    let ex2_us = median_device_us(gpu, 5, || Ok(()), ex2_kernel)?;
    let ex2_per_s = (threads * 8 * EX2_ITERS) as f64 / (ex2_us * 1e-6);
    // an empty kernel (one thread), timed as the plans are (after an L2 flush)
    let empty = gpu.load(&format!("{}\n.visible .entry empty(.param .u64 out, .param .u64 rows)\n{{\n\tret;\n}}\n", ssmc_ptx::Arch::SM90.header()), &["empty".to_string()])?;
    let empty_kernel = || Ok(gpu.launch(&empty, 0, &[&out], &[0], 1, 1, 128)?);
    let empty_us = median_device_us(gpu, opts.reps.max(3), || Ok(gpu.clear(&mut flush)?), empty_kernel)?;
    let empty_stream_us = stream_us(gpu, || Ok(gpu.clear(&mut flush)?), empty_kernel)?;
    let empty_graph_us = graph_us(gpu, || Ok(gpu.clear(&mut flush)?), empty_kernel).unwrap_or(f64::NAN);
    let sizes: Vec<usize> = layer.graph().dims().map(|(_, n)| dims.get(n).copied().unwrap_or(1)).collect();
    let elements = |s: &ssmc_ir::Shape| s.dims().iter().map(|d| sizes[d.index()] as u64).product::<u64>();
    let exp_evals = fused
        .plan()
        .graph
        .nodes()
        .iter()
        .filter(|n| {
            use ssmc_ir::{Op, UnaryOp::*};
            matches!(&n.op, Op::Unary(Exp | Exp2 | Softplus | Sigmoid | Silu | Tanh, _) | Op::Gate { .. } | Op::DiscretizeA { method: ssmc_ir::Method::Zoh, .. } | Op::DiscretizeB { method: ssmc_ir::Method::Zoh, .. })
        })
        .map(|n| elements(&n.shape))
        .sum();
    let sample_dims = sample_of(dims);
    let xs = random_inputs(layer.graph(), &sample_dims, opts.dtype, opts.seed ^ 1)?;
    let want = layer.eval(&xs)?;
    let max_abs_err = max_diff(&fused.run(&xs)?, &want).max(max_diff(&unfused.run(&xs)?, &want));
    let code = fused.prepare_gpu(&x)?;
    Ok(GpuBenchResult {
        dims: dims.clone(),
        dtype: opts.dtype,
        fused_us,
        unfused_us,
        fused_host_us,
        fused_stream_us,
        empty_stream_us,
        fused_graph_us,
        empty_graph_us,
        floor_bytes: fused.plan().bytes(&sizes),
        unfused_bytes: unfused.plan().bytes(&sizes),
        exp_evals,
        copy_gbps,
        ex2_per_s,
        empty_us,
        max_abs_err,
        // a schedule given with `--schedule` has no tuning to name it (this said `rows`)
        schedule: code.describe(),
        tuning: code.tuning.clone(),
        unfused_schedule: unfused.prepare_gpu(&x)?.describe(),
    })
}

/// `ssmc bench --grad --json`: the forward's and the backward's results, and the headline
/// numbers of training (`fwd_train_ms` is the forward's: the backward recomputes what it needs
/// from the inputs, so the training-mode forward is the plain one).
pub fn grad_json(forward: &str, backward: &str, bwd_ms: f64, bwd_unfused_ms: f64, fwd_train_ms: f64, bwd_bytes: u64) -> String {
    format!(
        "{{\"forward\": {forward}, \"backward\": {backward}, \"bwd_ms\": {}, \"bwd_unfused_ms\": {}, \"fwd_train_ms\": {}, \"bwd_bytes\": {bwd_bytes}}}",
        json_num(bwd_ms),
        json_num(bwd_unfused_ms),
        json_num(fwd_train_ms)
    )
}
