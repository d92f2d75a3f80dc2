//! The `ssmc` command line: `check` a spec, `run` a layer on tensors.
//!
//! Every user mistake ends with exit code 1 and one line on stderr starting with `error:`.

use clap::{Parser, Subcommand, ValueEnum};
use ssmc::ir::{print, DType};
use ssmc::runtime::io;
use ssmc::opt::{Explanation, Fusion, Options};
use ssmc::{random, Error, Layer};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "ssmc", version, about = "A compiler for selective state-space model (Mamba) kernels")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a spec and print its IR (canonical .ssm text, with each value's dims).
    Check {
        /// The .ssm file.
        spec: PathBuf,
    },
    /// Print the backward layer as .ssm: it takes the layer's inputs and one cotangent
    /// `d_<output>` per output, and gives `d_<input>` for every input and param.
    Grad {
        /// The .ssm file.
        spec: PathBuf,
    },
    /// Print the layer compiled for a target (PTX for the GPU).
    Compile {
        /// The .ssm file.
        spec: PathBuf,
        /// What to emit.
        #[arg(long, value_enum, default_value_t = Target::Ptx)]
        target: Target,
        /// Fused or unfused plan.
        #[arg(long, value_enum, default_value_t = FusionArg::On)]
        fusion: FusionArg,
        /// Storage dtype of the inputs the kernels read.
        #[arg(long, default_value = "f32", value_parser = parse_dtype)]
        dtype: DType,
        /// Sizes the kernels are specialized to (others at their defaults).
        #[arg(long, default_value = "")]
        dims: String,
        /// Spread inner dims over warp lanes (one of the autotuner's choices), WIDTH consecutive
        /// inner indices per lane (1, 2, 4, 8 or 16; 1 when not given)
        #[arg(long, value_name = "WIDTH", num_args = 0..=1, default_missing_value = "1")]
        lanes: Option<usize>,
        /// Cut scans along the seq dim into chunks combined by a parallel pass (another).
        #[arg(long, conflicts_with = "lanes")]
        chunked: bool,
        /// With --chunked: this many chunks a scan (a power of two from 2 to 256, held to at
        /// least 32 steps a chunk) instead of enough to fill an H200.
        #[arg(long, value_name = "K", requires = "chunked")]
        chunks: Option<usize>,
        /// Steps per shared-memory tile of one thread per row and of chunks (0, 1, 2, 4, 8, 16 or
        /// 32; 0 reads global memory in place; 16 when not given).
        #[arg(long, conflicts_with_all = ["lanes", "warp_scan"])]
        tile: Option<usize>,
        /// Load each tile when it starts instead of a tile ahead (fewer registers).
        #[arg(long)]
        no_prefetch: bool,
        /// A warp per row scanning the seq dim in parallel, one pass (another choice); kernels
        /// that do not qualify run one thread per row.
        #[arg(long, conflicts_with_all = ["lanes", "chunked"])]
        warp_scan: bool,
        /// With --warp-scan: store the outputs past L1 (`warpscan+streamout`, another choice).
        #[arg(long, requires = "warp_scan")]
        stream_out: bool,
        /// Threads per block (32, 64, 128, 256; 128 when not given).
        #[arg(long, value_name = "THREADS")]
        block: Option<usize>,
    },
    /// Show the unfused and the fused plan, the bytes each moves, and the rewrites that fired.
    Explain {
        /// The .ssm file.
        spec: PathBuf,
        /// Sizes to count bytes at, e.g. `batch=8,len=4096` (others: batch=1, dim=1536,
        /// len=2048, state=16, width=4, any other dim 64).
        #[arg(long, default_value = "")]
        dims: String,
        /// Storage dtype of the inputs.
        #[arg(long, default_value = "f32", value_parser = parse_dtype)]
        dtype: DType,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also write the fused plan as a Graphviz file.
        #[arg(long)]
        dot: Option<PathBuf>,
        /// Explain the backward layer (`ssmc grad SPEC`) instead, and which forward values its
        /// fused plan keeps in memory rather than recomputes.
        #[arg(long)]
        grad: bool,
        /// The backend to plan for: kernel forms differ (the CPU replays scans and sums across
        /// rows; the GPU's plans keep to the row template).
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BenchBackend,
    },
    /// Evaluate a layer on inputs from a safetensors file, or on random inputs.
    Run {
        /// The .ssm file.
        spec: PathBuf,
        /// Inputs, one tensor per declared input (f32, bf16, f16 or f64 each).
        #[arg(long, conflicts_with = "random")]
        inputs: Option<PathBuf>,
        /// Make random inputs instead (each from its declared `in lo..hi`, default -1..1).
        #[arg(long, requires = "dims")]
        random: bool,
        /// Sizes for --random, e.g. `batch=2,dim=8,len=16,state=4`.
        #[arg(long, requires = "random")]
        dims: Option<String>,
        /// Seed for --random.
        #[arg(long, default_value_t = 0, requires = "random")]
        seed: u64,
        /// Storage dtype of --random inputs (a dtype the spec pins wins).
        #[arg(long, default_value = "f32", requires = "random", value_parser = parse_dtype)]
        dtype: DType,
        /// Also write the random inputs here, to rerun or check elsewhere.
        #[arg(long, requires = "random")]
        save_inputs: Option<PathBuf>,
        /// Write the outputs here (safetensors); without it a summary is printed.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Storage dtype of the outputs.
        #[arg(long, default_value = "f32", value_parser = parse_dtype)]
        out_dtype: DType,
        /// Where to run it.
        #[arg(long, value_enum, default_value_t = Backend::Interp)]
        backend: Backend,
        /// Fused or unfused plan (compiled backends).
        #[arg(long, value_enum, default_value_t = FusionArg::On)]
        fusion: FusionArg,
        /// With --backend cuda: this schedule instead of the autotuner's choice (a name the
        /// bench prints, e.g. `lanes4`, `warpscan`, `rows+tiles16+prefetch`).
        #[arg(long)]
        schedule: Option<String>,
        /// Also run the backward: write `d_<input>` for every input beside the outputs, from
        /// the cotangents of --cotangents, or (with --random) random ones.
        #[arg(long)]
        grad: bool,
        /// The cotangents, one `d_<output>` per output shaped as it (implies --grad).
        #[arg(long)]
        cotangents: Option<PathBuf>,
    },
    /// Time the fused and the unfused plan on random inputs, checked against the oracle.
    Bench {
        /// The .ssm file.
        spec: PathBuf,
        /// Sizes, e.g. `batch=1,dim=1536,len=2048,state=16`.
        #[arg(long)]
        dims: String,
        /// Where to run.
        #[arg(long, value_enum, default_value_t = BenchBackend::Cpu)]
        backend: BenchBackend,
        /// Storage dtype of the random inputs.
        #[arg(long, default_value = "f32", value_parser = parse_dtype)]
        dtype: DType,
        /// Timed runs per plan (the median is reported).
        #[arg(long, default_value_t = 7)]
        reps: usize,
        /// Sweep one dim, doubling: `len=256..8192`.
        #[arg(long)]
        sweep: Option<String>,
        /// With --sweep: write an SVG plot of time against the swept dim.
        #[arg(long, requires = "sweep")]
        svg: Option<PathBuf>,
        /// Print JSON (one object, or an array for a sweep).
        #[arg(long)]
        json: bool,
        /// With --backend cuda: time the fused plan under this schedule instead of the
        /// autotuner's choice (see `ssmc run --schedule`).
        #[arg(long)]
        schedule: Option<String>,
        /// With --backend cpu: run seq loops in chunks of this many steps (a multiple of 4;
        /// 0: no chunks, every step walks every state vector, and decode steps run four rows
        /// at a time instead of in chunks of rows). Default 64.
        #[arg(long)]
        seq_chunk: Option<usize>,
        /// Time the backward too (the layer `ssmc grad SPEC` prints), fused and unfused; JSON
        /// gets `bwd_ms`, `bwd_unfused_ms`, `fwd_train_ms` and `bwd_bytes` (GPU: `bwd_us`, ...).
        #[arg(long, conflicts_with = "sweep")]
        grad: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    /// The f64 reference interpreter (the oracle).
    Interp,
    /// Cranelift JIT on this CPU.
    Cpu,
    /// PTX on the GPU (needs the `cuda` feature and a GPU).
    Cuda,
}

#[derive(Clone, Copy, ValueEnum)]
enum FusionArg {
    /// The optimizer's fused plan.
    On,
    /// One kernel per op.
    Off,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum BenchBackend {
    /// Cranelift JIT on this CPU.
    Cpu,
    /// The GPU (needs the `cuda` feature and a GPU).
    Cuda,
}

impl From<FusionArg> for Fusion {
    fn from(f: FusionArg) -> Fusion {
        match f {
            FusionArg::On => Fusion::On,
            FusionArg::Off => Fusion::Off,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Target {
    /// PTX text for sm_90.
    Ptx,
}

fn parse_dtype(s: &str) -> Result<DType, String> {
    s.parse()
}

/// `--schedule`: a GPU schedule's name, only with the cuda backend.
fn gpu_schedule(name: Option<&str>, cuda: bool) -> Result<Option<ssmc::GpuSchedule>, ssmc::Error> {
    match name {
        None => Ok(None),
        Some(_) if !cuda => Err(Error::Usage("--schedule picks a GPU schedule: it needs --backend cuda".into())),
        Some(n) => n.parse().map(Some).map_err(|e: ssmc::ScheduleError| Error::Usage(format!("--schedule: {e}"))),
    }
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        // One line, like every other error (the default `{info}` text spans two).
        let payload = info.payload();
        let msg = payload.downcast_ref::<&str>().copied().or_else(|| payload.downcast_ref::<String>().map(String::as_str));
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let msg = msg.unwrap_or("unknown cause").replace('\n', " ");
        eprintln!("error: internal compiler error{at}: {msg} (this is a bug in ssmc; please report it)");
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {}", usage_error_line(&e));
            return ExitCode::from(2);
        }
    };
    let spec = cli.command.spec().to_path_buf();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // a graph error at a node the spec wrote names the file, like the spec's own errors
        Err(Error::Ir(e)) if e.span.is_some() => {
            eprintln!("error: {}:{e}", spec.display());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

impl Command {
    /// The spec file every command reads.
    fn spec(&self) -> &std::path::Path {
        match self {
            Command::Check { spec }
            | Command::Grad { spec }
            | Command::Compile { spec, .. }
            | Command::Explain { spec, .. }
            | Command::Run { spec, .. }
            | Command::Bench { spec, .. } => spec,
        }
    }
}

/// A clap error as one line. clap puts what is missing (`--dims <DIMS>`) or allowed
/// (`[possible values: ...]`) on the lines after the first, so those are folded in.
fn usage_error_line(e: &clap::Error) -> String {
    if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        return "no subcommand given; use `ssmc check SPEC` or `ssmc run SPEC ...` (see `ssmc --help`)".into();
    }
    let text = e.render().to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error:").unwrap_or(first).trim();
    let details: Vec<&str> = lines.take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
    match (details.is_empty(), first.ends_with(':')) {
        (true, _) => first.to_string(),
        (false, true) => format!("{first} {}", details.join(", ")),
        (false, false) => {
            let details: Vec<&str> = details.iter().map(|d| d.trim_start_matches('[').trim_end_matches(']')).collect();
            format!("{first} ({})", details.join("; "))
        }
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Check { spec } => {
            let layer = Layer::from_file(&spec)?;
            print!("{}", print::print_annotated(layer.graph()));
            Ok(())
        }
        Command::Grad { spec } => {
            let layer = Layer::from_file(&spec)?;
            print!("{}", print::print(layer.grad()?.graph()));
            Ok(())
        }
        Command::Compile { spec, target: Target::Ptx, fusion, dtype, dims, lanes, chunked, chunks, tile, no_prefetch, warp_scan, stream_out, block } => {
            let layer = Layer::from_file(&spec)?;
            let given = random::parse_dims(layer.graph(), &dims)?;
            let schedule = compile_schedule(lanes, chunked, chunks, tile, no_prefetch, warp_scan, stream_out, block)?;
            print!("{}", ssmc::gpu::ptx(&layer, fusion.into(), &given, dtype, schedule)?);
            Ok(())
        }
        Command::Explain { spec, dims, dtype, json, dot, grad, backend } => {
            let forward = Layer::from_file(&spec)?;
            let layer = if grad { forward.grad()? } else { forward.clone() };
            let given = random::parse_dims(layer.graph(), &dims)?;
            let pairs: Vec<(&str, usize)> = given.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let mut opts = Options::at_sizes(layer.graph(), &pairs);
            opts.input_dtype = dtype;
            opts.forms = match backend {
                BenchBackend::Cpu => ssmc::Backend::Cpu.forms(),
                BenchBackend::Cuda => ssmc::Backend::Cuda.forms(),
            };
            let unfused = layer.plan(Fusion::Off, &opts)?;
            let fused = layer.plan(Fusion::On, &opts)?;
            let ex = Explanation {
                unfused: &unfused.plan,
                fused: &fused.plan,
                report: &fused.report,
                sizes: &opts.sizes,
                launch_bytes: ssmc::opt::cost::LAUNCH_BYTES,
            };
            if let Some(path) = dot {
                std::fs::write(&path, ssmc::opt::explain::dot(&fused.plan))
                    .map_err(|source| Error::File { path: path.display().to_string(), source })?;
            }
            print!("{}", if json { ex.json() } else { ex.text() });
            if grad && !json {
                let cots: Vec<String> = forward.graph().outputs().iter().map(|o| ssmc::ir::grad::cotangent_name(&o.name)).collect();
                let r = ssmc::train::recomputation(&fused.plan, &cots, &opts.sizes);
                println!("\nforward values the fused backward keeps in memory:");
                if r.kept.is_empty() {
                    println!("  none");
                }
                for (what, dims, bytes) in &r.kept {
                    println!("  {what:<24} {dims:<28} {:.2} MB", *bytes as f64 / 1e6);
                }
                println!("forward values it recomputes in registers, by kernel:");
                for (kernel, ops) in r.recomputed.iter().filter(|(_, ops)| !ops.is_empty()) {
                    println!("  {kernel:<16} {} ({})", ops.len(), ops.join(" "));
                }
            }
            Ok(())
        }
        Command::Bench { spec, dims, backend, dtype, reps, sweep, svg, json, schedule, seq_chunk, grad } => {
            let layer = Layer::from_file(&spec)?;
            let base = random::parse_dims(layer.graph(), &dims)?;
            let schedule = gpu_schedule(schedule.as_deref(), backend == BenchBackend::Cuda)?;
            let mut cpu_schedule = ssmc::Schedule::cpu_default();
            match seq_chunk {
                Some(_) if backend == BenchBackend::Cuda => {
                    return Err(Error::Usage("--seq-chunk is a CPU schedule: it needs --backend cpu".into()))
                }
                Some(n) if n % 4 != 0 => return Err(Error::Usage(format!("--seq-chunk {n}: give a multiple of 4 (or 0 for none)"))),
                Some(n) => cpu_schedule.seq_chunk = n,
                None => {}
            }
            let opts = ssmc::bench::BenchOptions { dtype, reps, seed: 0, schedule, cpu_schedule };
            if backend == BenchBackend::Cuda {
                if sweep.is_some() {
                    return Err(Error::Usage("--sweep runs on the cpu backend only".into()));
                }
                let r = ssmc::bench::bench_cuda(&layer, &base, &opts)?;
                if grad {
                    let b = ssmc::bench::bench_cuda(&layer.grad()?, &base, &opts)?;
                    if json {
                        println!("{}", ssmc::bench::grad_json(&r.json(), &b.json(), b.fused_us / 1e3, b.unfused_us / 1e3, r.fused_us / 1e3, b.floor_bytes));
                    } else {
                        print!("forward\n{}\nbackward\n{}", r.table(), b.table());
                    }
                    return Ok(());
                }
                print!("{}", if json { r.json() + "\n" } else { r.table() });
                return Ok(());
            }
            match sweep {
                None if grad => {
                    let r = ssmc::bench::bench(&layer, ssmc::Backend::Cpu, &base, &opts)?;
                    let b = ssmc::bench::bench(&layer.grad()?, ssmc::Backend::Cpu, &base, &opts)?;
                    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
                    // from the spec's layer to the backward's machine code: grad, the optimizer, the JIT
                    let x = random::random_inputs(layer.grad()?.graph(), &base, dtype, 0)?;
                    let start = std::time::Instant::now();
                    let back = layer.grad()?;
                    back.compile_for(ssmc::Target::Cpu { schedule: cpu_schedule, keep_buffers: false }, Fusion::On)?.prepare(&x)?;
                    let compile = ms(start.elapsed());
                    if json {
                        let j = ssmc::bench::grad_json(&r.json(), &b.json(), ms(b.fused), ms(b.unfused), ms(r.fused), b.floor_bytes);
                        println!("{}, \"bwd_compile_ms\": {}}}", j.trim_end_matches('}'), compile);
                    } else {
                        print!("forward\n{}\nbackward\n{}", r.table(), b.table());
                        println!("backward from the spec to machine code (grad, optimizer, JIT): {compile:.1} ms");
                    }
                }
                None => {
                    let r = ssmc::bench::bench(&layer, ssmc::Backend::Cpu, &base, &opts)?;
                    print!("{}", if json { r.json() + "\n" } else { r.table() });
                }
                Some(text) => {
                    let (dim, sizes) = ssmc::bench::parse_sweep(&text)?;
                    if layer.graph().dim(&dim).is_none() {
                        return Err(Error::Usage(format!("--sweep: `{dim}` is not a dim of this layer")));
                    }
                    let mut results = Vec::new();
                    for (i, size) in sizes.iter().enumerate() {
                        let mut d = base.clone();
                        d.insert(dim.clone(), *size);
                        let filled = (i + 1) * 30 / sizes.len();
                        eprint!("\r[{}{}] {}/{} {dim}={size}   ", "#".repeat(filled), ".".repeat(30 - filled), i + 1, sizes.len());
                        results.push(ssmc::bench::bench(&layer, ssmc::Backend::Cpu, &d, &opts)?);
                    }
                    eprint!("\r{}\r", " ".repeat(60));
                    if json {
                        let items: Vec<String> = results.iter().map(|r| r.json()).collect();
                        println!("[{}]", items.join(",\n "));
                    } else {
                        for r in &results {
                            println!("{}", r.table());
                        }
                    }
                    if let Some(path) = svg {
                        let title = format!("{} on the CPU: fused vs unfused", layer.graph().name());
                        std::fs::write(&path, ssmc::bench::svg(&dim, &results, &title))
                            .map_err(|source| Error::File { path: path.display().to_string(), source })?;
                    }
                }
            }
            Ok(())
        }
        Command::Run { spec, inputs, random, dims, seed, dtype, save_inputs, out, out_dtype, backend, fusion, schedule, grad, cotangents } => {
            let layer = Layer::from_file(&spec)?;
            let schedule = gpu_schedule(schedule.as_deref(), matches!(backend, Backend::Cuda))?;
            let inputs = match (inputs, random) {
                (Some(path), _) => io::load(&path)?,
                (None, true) => {
                    let dims = random::parse_dims(layer.graph(), dims.as_deref().unwrap_or(""))?;
                    let made = random::random_inputs(layer.graph(), &dims, dtype, seed)?;
                    if let Some(path) = save_inputs {
                        io::save(&path, &made)?;
                    }
                    made
                }
                (None, false) => {
                    return Err(Error::Usage("give the inputs with --inputs FILE, or use --random --dims ...".into()))
                }
            };
            let evaluate = |layer: &Layer, inputs: &ssmc::runtime::TensorMap| -> Result<ssmc::runtime::TensorMap, Error> {
                match backend {
                    Backend::Interp => layer.eval_as(inputs, out_dtype),
                    Backend::Cpu | Backend::Cuda => {
                        let target = if matches!(backend, Backend::Cpu) { ssmc::Backend::Cpu } else { ssmc::Backend::Cuda };
                        let compiled = layer.compile(target, fusion.into())?;
                        let compiled = match schedule {
                            Some(s) => compiled.with_gpu_schedule(s)?,
                            None => compiled,
                        };
                        compiled.run_as(inputs, out_dtype)
                    }
                }
            };
            let mut outputs = evaluate(&layer, &inputs)?;
            if grad || cotangents.is_some() {
                let back = layer.grad()?;
                let cots = match cotangents {
                    Some(path) => io::load(&path)?,
                    // the backward's inputs are the forward's (drawn again from the same seed:
                    // the same values) and then the cotangents
                    None if random => {
                        let d = random::parse_dims(back.graph(), dims.as_deref().unwrap_or(""))?;
                        let mut all = random::random_inputs(back.graph(), &d, dtype, seed)?;
                        all.retain(|n, _| layer.graph().input_named(n).is_none());
                        all
                    }
                    None => {
                        return Err(Error::Usage(
                            "--grad with --inputs needs --cotangents FILE (one `d_<output>` per output)".into(),
                        ))
                    }
                };
                let shapes: Vec<(String, Vec<usize>)> = outputs.iter().map(|(n, t)| (n.clone(), t.shape().to_vec())).collect();
                ssmc::train::check_cotangents(&shapes, &cots)?;
                let mut all = inputs.clone();
                all.extend(cots);
                outputs.extend(evaluate(&back, &all)?);
            }
            match out {
                Some(path) => {
                    io::save(&path, &outputs)?;
                    for (name, t) in &outputs {
                        println!("wrote `{name}` {:?} {} to {}", t.shape(), t.dtype(), path.display());
                    }
                }
                None => {
                    for (name, t) in &outputs {
                        println!("{}", summary(name, t));
                    }
                }
            }
            Ok(())
        }
    }
}

fn summary(name: &str, t: &ssmc::runtime::HostTensor) -> String {
    let v = t.to_f64();
    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let (lo, hi) = finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let mean = finite.iter().sum::<f64>() / finite.len().max(1) as f64;
    let head: Vec<String> = v.iter().take(4).map(|x| format!("{x:.6}")).collect();
    let nonfinite = v.len() - finite.len();
    let mut s = format!(
        "{name}: {} {:?}  min {lo:.6}  max {hi:.6}  mean {mean:.6}  first [{}{}]",
        t.dtype(),
        t.shape(),
        head.join(", "),
        if v.len() > 4 { ", ..." } else { "" }
    );
    if nonfinite > 0 {
        s.push_str(&format!("  non-finite {nonfinite}"));
    }
    s
}

/// The GPU schedule `ssmc compile`'s flags ask for; a number out of range names its flag.
#[allow(clippy::too_many_arguments)]
fn compile_schedule(
    lanes: Option<usize>,
    chunked: bool,
    chunks: Option<usize>,
    tile: Option<usize>,
    no_prefetch: bool,
    warp_scan: bool,
    stream_out: bool,
    block: Option<usize>,
) -> Result<ssmc::GpuSchedule, Error> {
    use ssmc::{Block, Chunks, GpuSchedule, LaneWidth, Tiles};
    let flag = |name: &'static str, n: usize| move |e: ssmc::ScheduleError| Error::Usage(format!("{name} {n}: {e}"));
    let block = match block {
        Some(b) => Block::new(b).map_err(flag("--block", b))?,
        None => Block::DEFAULT,
    };
    let tiles = match tile.unwrap_or(Tiles::DEFAULT.steps()) {
        0 => None,
        t => Some(Tiles::new(t, !no_prefetch).map_err(flag("--tile", t))?),
    };
    Ok(match (lanes, chunked, warp_scan) {
        (Some(w), _, _) => GpuSchedule::Lanes { width: LaneWidth::new(w).map_err(flag("--lanes", w))?, block },
        (None, true, _) => {
            let chunks = match chunks {
                Some(k) => Chunks::exactly(k).map_err(flag("--chunks", k))?,
                None => Chunks::FILL,
            };
            GpuSchedule::Chunked { chunks, tiles, block }
        }
        (None, false, true) => GpuSchedule::WarpScan { stream_out, block },
        (None, false, false) => GpuSchedule::Rows { tiles, block },
    })
}
