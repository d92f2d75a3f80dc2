//! End-to-end tests of the `ssmc` binary: each runs the real executable as a process and checks
//! its exit code, stdout and stderr, and the tensor files it writes.
//!
//! The CLI's contract: every user mistake exits non-zero (1, or 2 for a usage error clap finds)
//! with exactly one stderr line, starting with `error:`, and never a panic or a backtrace.

use ssmc::ir::DType;
use ssmc::runtime::{io, HostTensor, TensorMap};
use ssmc::Layer;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const BIN: &str = env!("CARGO_BIN_EXE_ssmc");
const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A fresh directory under the system temp dir, unique per test (and per call), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ssmc-cli-{}-{test}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, contents).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn example(name: &str) -> PathBuf {
    Path::new(MANIFEST).join("examples").join(name)
}

fn mamba1() -> PathBuf {
    example("mamba1.ssm")
}

/// Runs `ssmc` with `args`. Whatever the outcome, no panic text or backtrace hint may appear.
fn ssmc<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        // Without this, a stray default panic message would say "run with `RUST_BACKTRACE=1`".
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .expect("run the ssmc binary");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    for (what, s) in [("stdout", &stdout), ("stderr", &stderr)] {
        for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace", "internal compiler error"] {
            assert!(!s.contains(bad), "ssmc {:?}: {what} contains {bad:?}:\n{s}", display_args(args));
        }
    }
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn display_args<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Vec<String> {
    args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect()
}

/// Runs `ssmc` and expects success; returns stdout.
fn ok<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = ssmc(args);
    assert!(
        out.status.success(),
        "ssmc {:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        display_args(args),
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stderr), "", "ssmc {:?}: a success writes nothing to stderr", display_args(args));
    text(&out.stdout)
}

/// Runs `ssmc` and expects failure with exit `code`, nothing on stdout, and exactly one stderr
/// line that starts with `error:` and contains every one of `needles`. Returns that line.
fn fails<S: AsRef<std::ffi::OsStr>>(args: &[S], code: i32, needles: &[&str]) -> String {
    let out = ssmc(args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let ctx = format!("ssmc {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", display_args(args));
    assert_eq!(out.status.code(), Some(code), "wrong exit code; {ctx}");
    assert_eq!(stdout, "", "a failure prints nothing on stdout; {ctx}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected exactly one stderr line; {ctx}");
    assert!(stderr.ends_with('\n'), "the error line ends with a newline; {ctx}");
    let line = lines[0];
    assert!(line.starts_with("error: "), "the stderr line starts with `error: `; {ctx}");
    assert!(line.len() > "error: ".len() + 10, "the error says something; {ctx}");
    for n in needles {
        assert!(line.contains(n), "the error line should mention {n:?}; {ctx}");
    }
    line.to_string()
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// Deterministic, non-trivial values in `[lo, hi)`.
fn values(n: usize, lo: f64, hi: f64, salt: u64) -> Vec<f64> {
    (0..n as u64)
        .map(|i| {
            let x = (i.wrapping_mul(2654435761).wrapping_add(salt.wrapping_mul(40503)) % 1000) as f64 / 1000.0;
            lo + (hi - lo) * x
        })
        .collect()
}

fn tensor(dtype: DType, shape: &[usize], lo: f64, hi: f64, salt: u64) -> HostTensor {
    let n = shape.iter().product();
    HostTensor::from_f64(dtype, shape.to_vec(), &values(n, lo, hi, salt)).unwrap()
}

/// Mamba1 inputs in mixed dtypes: activations bf16, weights f32.
fn mamba1_inputs(batch: usize, dim: usize, len: usize, state: usize) -> TensorMap {
    let bf = DType::BF16;
    let mut m = TensorMap::new();
    m.insert("u".into(), tensor(bf, &[batch, dim, len], -1.0, 1.0, 1));
    m.insert("delta".into(), tensor(bf, &[batch, dim, len], -2.0, 1.0, 2));
    m.insert("z".into(), tensor(bf, &[batch, dim, len], -1.5, 1.5, 3));
    m.insert("B".into(), tensor(bf, &[batch, state, len], -1.0, 1.0, 4));
    m.insert("C".into(), tensor(bf, &[batch, state, len], -1.0, 1.0, 5));
    m.insert("A".into(), tensor(DType::F32, &[dim, state], -4.0, -0.5, 6));
    m.insert("D".into(), tensor(DType::F32, &[dim], -1.0, 1.0, 7));
    m.insert("delta_bias".into(), tensor(DType::F32, &[dim], -0.5, 0.5, 8));
    m
}

const DIMS: &str = "batch=2,dim=8,len=5,state=4";

/// Runs `run` on mamba1 with `inputs` and returns the error line (exit code 1).
fn run_mamba1_with(dir: &TempDir, inputs: &TensorMap, needles: &[&str]) -> String {
    let file = dir.path("inputs.safetensors");
    io::save(&file, inputs).unwrap();
    fails(&["run".into(), p(&mamba1()), "--inputs".into(), p(&file)], 1, needles)
}

/// A safetensors file written byte by byte: 8-byte little-endian header length, JSON header, data.
fn raw_safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

// ---------------------------------------------------------------------------------------------
// check
// ---------------------------------------------------------------------------------------------

#[test]
fn check_every_example_is_a_fixed_point() {
    let dir = TempDir::new("check-fixed-point");
    let mut examples: Vec<PathBuf> = std::fs::read_dir(Path::new(MANIFEST).join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ssm"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 3, "examples/*.ssm: {examples:?}");
    assert!(examples.contains(&mamba1()));
    for ex in &examples {
        let first = ok(&[Path::new("check"), ex.as_path()]);
        assert!(first.starts_with("layer "), "{}: check prints a layer:\n{first}", ex.display());
        assert!(first.trim_end().ends_with('}'), "{}: check prints the whole layer:\n{first}", ex.display());
        let name = ex.file_name().unwrap().to_string_lossy().into_owned();
        let again = dir.write(&name, &first);
        let second = ok(&[Path::new("check"), again.as_path()]);
        assert_eq!(first, second, "{}: check's output, checked again, changes", ex.display());
        // The printed text is a layer the library reads too, with the same inputs.
        let (a, b) = (Layer::from_file(ex).unwrap(), Layer::from_file(&again).unwrap());
        let names = |l: &Layer| l.graph().inputs().map(|(_, d)| d.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&a), names(&b), "{}", ex.display());
    }
}

#[test]
fn check_mamba1_prints_its_declarations_and_shapes() {
    let out = ok(&[Path::new("check"), mamba1().as_path()]);
    assert!(out.starts_with("layer Mamba1 {"), "{out}");
    for needle in ["dims batch, dim, len, state;", "input u: [batch, dim, len];", "param A: [dim, state] in -4.0..-0.5;", "output out = gate(y, z, silu); // [batch, dim, len]"] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

#[test]
fn check_reports_a_spec_error_with_file_line_col() {
    let dir = TempDir::new("check-unknown-dim");
    let spec = dir.write("bad.ssm", "layer L {\n    dims n;\n    input x: [m];\n    output y = x;\n}\n");
    let line = fails(&["check".into(), p(&spec)], 1, &["unknown dim `m`"]);
    assert!(line.starts_with(&format!("error: {}:3:15: ", p(&spec))), "{line}");
    // The same mistake under `run` reads the same.
    let line2 = fails(&["run".into(), p(&spec), "--random".into(), "--dims".into(), "n=2".into()], 1, &["unknown dim `m`"]);
    assert_eq!(line, line2);
}

#[test]
fn specs_too_deep_or_too_long_are_one_line_errors() {
    let dir = TempDir::new("check-too-deep");
    let layer = |e: String| format!("layer L {{\n    dims n;\n    input x: [n];\n    output y = {e};\n}}\n");
    let cases = [
        (format!("{}x{}", "(".repeat(100_000), ")".repeat(100_000)), "nested more than 64 deep"),
        (format!("{}x{}", "exp(".repeat(100_000), ")".repeat(100_000)), "nested more than 64 deep"),
        (vec!["x"; 100_000].join(" + "), "longer than 1024 tokens"),
        ("1e309 * x".to_string(), "the number `1e309` is out of range of f64"),
    ];
    for (i, (expr, needle)) in cases.into_iter().enumerate() {
        let spec = dir.write(&format!("deep{i}.ssm"), layer(expr));
        let line = fails(&["check".into(), p(&spec)], 1, &[needle]);
        assert!(line.starts_with(&format!("error: {}:4:", p(&spec))), "{line}");
    }
}

#[test]
fn values_too_large_to_make_are_one_line_errors() {
    // two inputs of 2^21 values whose outer product would have 2^42
    let dir = TempDir::new("run-too-large");
    let spec = dir.write("outer.ssm", "layer O {\n    dims n, m;\n    input x: [n];\n    input y: [m];\n    output z = x * y;\n}\n");
    for backend in ["interp", "cpu"] {
        let args = ["run", &p(&spec), "--backend", backend, "--random", "--dims", "n=2097152,m=2097152"];
        let line = fails(&args, 1, &["a value over [n=2097152, m=2097152] would have more than 2^40 elements"]);
        assert!(line.contains("outer.ssm:5:"), "{line}");
    }
}

#[test]
fn check_reports_a_syntax_error_with_file_line_col() {
    let dir = TempDir::new("check-syntax");
    let spec = dir.write("syntax.ssm", "layer L {\n    dims n;\n    input x: [n]\n    output y = x;\n}\n");
    let line = fails(&["check".into(), p(&spec)], 1, &[&format!("{}:", p(&spec))]);
    let rest = &line["error: ".len() + p(&spec).len() + 1..];
    let mut parts = rest.splitn(3, ':');
    let (l, c) = (parts.next().unwrap(), parts.next().unwrap());
    assert!(l.parse::<u32>().is_ok() && c.parse::<u32>().is_ok(), "file:line:col expected: {line}");
}

#[test]
fn check_missing_file_is_one_clear_line() {
    let dir = TempDir::new("check-missing");
    let missing = dir.path("does-not-exist.ssm");
    let line = fails(&["check".into(), p(&missing)], 1, &[&p(&missing)]);
    #[cfg(unix)]
    assert!(line.contains("No such file or directory"), "{line}");
    // A directory is not a spec either.
    fails(&["check".into(), p(&dir.0)], 1, &[&p(&dir.0)]);
}

// ---------------------------------------------------------------------------------------------
// run --random
// ---------------------------------------------------------------------------------------------

#[test]
fn run_random_writes_the_output_file() {
    let dir = TempDir::new("run-random");
    let out = dir.path("out.safetensors");
    let stdout = ok(&["run", &p(&mamba1()), "--random", "--dims", DIMS, "--out", &p(&out)]);
    assert!(stdout.contains("wrote `out` [2, 8, 5] f32"), "{stdout}");
    assert!(stdout.contains(&p(&out)), "{stdout}");
    let got = io::load(&out).unwrap();
    assert_eq!(got.keys().collect::<Vec<_>>(), vec!["out"]);
    let t = &got["out"];
    assert_eq!(t.shape(), &[2, 8, 5]);
    assert_eq!(t.dtype(), DType::F32);
    let v = t.to_f64();
    assert!(v.iter().all(|x| x.is_finite()), "{v:?}");
    assert!(v.iter().any(|&x| x != 0.0), "{v:?}");

    // The same in bf16: same name and shape, bf16 storage, values the f32 ones to bf16 precision.
    let out16 = dir.path("out16.safetensors");
    let stdout = ok(&["run", &p(&mamba1()), "--random", "--dims", DIMS, "--out", &p(&out16), "--out-dtype", "bf16"]);
    assert!(stdout.contains("wrote `out` [2, 8, 5] bf16"), "{stdout}");
    let got16 = io::load(&out16).unwrap();
    assert_eq!(got16.keys().collect::<Vec<_>>(), vec!["out"]);
    assert_eq!(got16["out"].dtype(), DType::BF16);
    assert_eq!(got16["out"].shape(), &[2, 8, 5]);
    for (a, b) in v.iter().zip(got16["out"].to_f64()) {
        assert!((a - b).abs() <= a.abs() / 128.0 + 1e-30, "f32 {a} vs bf16 {b}");
    }

    // The shape follows --dims.
    let out2 = dir.path("out2.safetensors");
    ok(&["run", &p(&mamba1()), "--random", "--dims", "state=3,len=7,dim=1,batch=3", "--out", &p(&out2), "--out-dtype", "f64"]);
    let got2 = io::load(&out2).unwrap();
    assert_eq!(got2["out"].shape(), &[3, 1, 7]);
    assert_eq!(got2["out"].dtype(), DType::F64);
}

#[test]
fn run_random_without_out_prints_a_summary() {
    let stdout = ok(&["run", &p(&mamba1()), "--random", "--dims", DIMS]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(lines[0].starts_with("out: f32 [2, 8, 5]"), "{stdout}");
    for word in ["min", "max", "mean", "first ["] {
        assert!(lines[0].contains(word), "{stdout}");
    }
}

#[test]
fn run_random_is_reproducible_by_seed() {
    let dir = TempDir::new("run-seed");
    let run = |seed: &str, name: &str| {
        let out = dir.path(name);
        ok(&["run", &p(&mamba1()), "--random", "--dims", DIMS, "--seed", seed, "--out", &p(&out)]);
        io::load(&out).unwrap()
    };
    let (a, b, c) = (run("7", "a.st"), run("7", "b.st"), run("8", "c.st"));
    assert_eq!(a, b, "the same seed gives the same output");
    assert_ne!(a, c, "another seed gives another output");
}

#[test]
fn run_random_every_example() {
    let dir = TempDir::new("run-every-example");
    for name in ["mamba1.ssm", "s4d.ssm", "mamba1_step.ssm", "mamba1_zoh.ssm", "mamba1_conv.ssm", "reverse.ssm", "sigmoid_noskip.ssm"] {
        let spec = example(name);
        if !spec.exists() {
            continue;
        }
        let layer = Layer::from_file(&spec).unwrap();
        let dims: Vec<String> = layer.graph().dims().map(|(_, n)| format!("{n}=3")).collect();
        let ins = dir.path(&format!("{name}.in.st"));
        let out = dir.path(&format!("{name}.out.st"));
        ok(&["run", &p(&spec), "--random", "--dims", &dims.join(","), "--save-inputs", &p(&ins), "--out", &p(&out)]);
        let want = layer.eval(&io::load(&ins).unwrap()).unwrap();
        assert_eq!(io::load(&out).unwrap(), want, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// run --inputs
// ---------------------------------------------------------------------------------------------

#[test]
fn run_inputs_matches_the_library() {
    let dir = TempDir::new("run-inputs");
    let inputs = mamba1_inputs(2, 6, 9, 3);
    let file = dir.path("inputs.safetensors");
    io::save(&file, &inputs).unwrap();
    // The file really holds the mixed dtypes.
    let back = io::load(&file).unwrap();
    assert_eq!(back["u"].dtype(), DType::BF16);
    assert_eq!(back["A"].dtype(), DType::F32);
    assert_eq!(back, inputs);

    let layer = Layer::from_file(&mamba1()).unwrap();
    for (out_dtype, name) in [(DType::F32, "f32"), (DType::BF16, "bf16"), (DType::F16, "f16"), (DType::F64, "f64")] {
        let out = dir.path(&format!("out-{name}.safetensors"));
        let stdout = ok(&["run", &p(&mamba1()), "--inputs", &p(&file), "--out", &p(&out), "--out-dtype", name]);
        assert!(stdout.contains(&format!("wrote `out` [2, 6, 9] {name}")), "{stdout}");
        let got = io::load(&out).unwrap();
        let want = layer.eval_as(&inputs, out_dtype).unwrap();
        assert_eq!(got.keys().collect::<Vec<_>>(), vec!["out"]);
        assert_eq!(got["out"].dtype(), out_dtype);
        assert_eq!(got["out"].shape(), &[2, 6, 9]);
        assert_eq!(got["out"].to_f64(), want["out"].to_f64(), "--out-dtype {name}");
        assert_eq!(got, want, "--out-dtype {name}");
    }
    // The default is f32, the same as Layer::eval.
    let out = dir.path("out-default.safetensors");
    ok(&["run", &p(&mamba1()), "--inputs", &p(&file), "--out", &p(&out), "--backend", "interp"]);
    assert_eq!(io::load(&out).unwrap(), layer.eval(&inputs).unwrap());
}

#[test]
fn save_inputs_then_inputs_reproduces_the_random_run() {
    let dir = TempDir::new("save-inputs");
    let (ins, out_random, out_again) = (dir.path("ins.st"), dir.path("out-random.st"), dir.path("out-again.st"));
    ok(&[
        "run", &p(&mamba1()), "--random", "--dims", DIMS, "--seed", "42", "--dtype", "bf16", "--save-inputs", &p(&ins), "--out", &p(&out_random),
    ]);
    let saved = io::load(&ins).unwrap();
    let mut names: Vec<&str> = saved.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["A", "B", "C", "D", "delta", "delta_bias", "u", "z"]);
    assert!(saved.values().all(|t| t.dtype() == DType::BF16), "--dtype bf16 stores the inputs in bf16");
    assert_eq!(saved["u"].shape(), &[2, 8, 5]);
    assert_eq!(saved["A"].shape(), &[8, 4]);
    assert_eq!(saved["B"].shape(), &[2, 4, 5]);
    assert_eq!(saved["D"].shape(), &[8]);
    // Each input is drawn from its declared range: A from -4..-0.5, the rest from -1..1.
    assert!(saved["A"].to_f64().iter().all(|&a| (-4.0..=-0.5).contains(&a)), "{:?}", saved["A"].to_f64());
    assert!(saved["u"].to_f64().iter().all(|&x| (-1.0..=1.0).contains(&x)));

    ok(&["run", &p(&mamba1()), "--inputs", &p(&ins), "--out", &p(&out_again)]);
    let (a, b) = (io::load(&out_random).unwrap(), io::load(&out_again).unwrap());
    assert_eq!(a, b, "rerunning on the saved inputs gives the same output");
    assert_eq!(a, Layer::from_file(&mamba1()).unwrap().eval(&saved).unwrap());
}

#[test]
fn a_dtype_the_spec_pins_wins_over_dtype() {
    let dir = TempDir::new("pinned-random");
    let spec = dir.write("pinned.ssm", "layer P {\n    dims n;\n    input x: f32[n];\n    input w: [n];\n    output y = x * w;\n}\n");
    let ins = dir.path("ins.st");
    ok(&["run", &p(&spec), "--random", "--dims", "n=4", "--dtype", "f16", "--save-inputs", &p(&ins)]);
    let saved = io::load(&ins).unwrap();
    assert_eq!(saved["x"].dtype(), DType::F32);
    assert_eq!(saved["w"].dtype(), DType::F16);
    // And the saved file runs.
    ok(&["run", &p(&spec), "--inputs", &p(&ins)]);
}

// ---------------------------------------------------------------------------------------------
// run: mistakes in the inputs file
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_input_tensor_is_named() {
    let dir = TempDir::new("missing-input");
    let mut inputs = mamba1_inputs(2, 8, 5, 4);
    inputs.remove("z");
    run_mamba1_with(&dir, &inputs, &["missing input `z`", "[batch, dim, len]"]);
}

#[test]
fn extra_input_tensor_is_named() {
    let dir = TempDir::new("extra-input");
    let mut inputs = mamba1_inputs(2, 8, 5, 4);
    inputs.insert("bogus_extra".into(), tensor(DType::F32, &[3], -1.0, 1.0, 9));
    run_mamba1_with(&dir, &inputs, &["unexpected input `bogus_extra`", "Mamba1"]);
}

#[test]
fn wrong_rank_is_named() {
    let dir = TempDir::new("wrong-rank");
    let mut inputs = mamba1_inputs(2, 8, 5, 4);
    inputs.insert("u".into(), tensor(DType::BF16, &[2, 8], -1.0, 1.0, 1));
    run_mamba1_with(&dir, &inputs, &["`u`", "[2, 8]", "rank 3"]);
}

#[test]
fn inconsistent_dim_sizes_name_both_inputs() {
    let dir = TempDir::new("inconsistent-dims");
    let mut inputs = mamba1_inputs(2, 8, 5, 4);
    inputs.insert("delta".into(), tensor(DType::BF16, &[2, 8, 6], -1.0, 1.0, 2));
    run_mamba1_with(&dir, &inputs, &["`delta`", "`u`", "`len` = 6", "`len` = 5"]);
    // A weight disagreeing with an activation: D is [dim].
    let mut inputs = mamba1_inputs(2, 8, 5, 4);
    inputs.insert("D".into(), tensor(DType::F32, &[7], -1.0, 1.0, 7));
    run_mamba1_with(&dir, &inputs, &["`D`", "`u`", "`dim` = 7", "`dim` = 8"]);
}

#[test]
fn zero_sized_input_is_named() {
    let dir = TempDir::new("zero-size");
    let mut inputs = mamba1_inputs(2, 8, 5, 4);
    for (name, t) in inputs.iter_mut() {
        if ["u", "delta", "z", "B", "C"].contains(&name.as_str()) {
            let mut shape = t.shape().to_vec();
            shape[2] = 0;
            *t = HostTensor::from_f64(DType::BF16, shape, &[]).unwrap();
        }
    }
    run_mamba1_with(&dir, &inputs, &["size 0", "`len`"]);
}

#[test]
fn unsupported_dtype_in_the_file_is_named() {
    let dir = TempDir::new("i32");
    // u as i32 [2, 8, 5] (80 elements, 320 bytes), written by hand.
    let header = r#"{"u":{"dtype":"I32","shape":[2,8,5],"data_offsets":[0,320]}}"#;
    let file = dir.write("i32.safetensors", raw_safetensors(header, &[0u8; 320]));
    let line = fails(&["run".into(), p(&mamba1()), "--inputs".into(), p(&file)], 1, &[&p(&file), "`u`", "I32"]);
    assert!(line.contains("f32") && line.contains("bf16"), "the error says what is accepted: {line}");

    // The hand-written format itself is right: the same bytes with F32 load fine.
    let header = r#"{"u":{"dtype":"F32","shape":[2,8,5],"data_offsets":[0,320]}}"#;
    let ok_file = dir.write("f32.safetensors", raw_safetensors(header, &[0u8; 320]));
    assert_eq!(io::load(&ok_file).unwrap()["u"].shape(), &[2, 8, 5]);
    // ... and running on it reaches the next mistake: the other inputs are missing.
    fails(&["run".into(), p(&mamba1()), "--inputs".into(), p(&ok_file)], 1, &["missing input `delta`"]);
}

#[test]
fn corrupt_safetensors_file_is_one_line() {
    let dir = TempDir::new("corrupt");
    let garbage = dir.write("garbage.safetensors", b"this is not a tensor file at all\n");
    fails(&["run".into(), p(&mamba1()), "--inputs".into(), p(&garbage)], 1, &[&p(&garbage), "not a valid safetensors file"]);

    // Truncated: a valid file missing its last bytes.
    let good = dir.path("good.safetensors");
    io::save(&good, &mamba1_inputs(2, 8, 5, 4)).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.write("truncated.safetensors", &bytes[..bytes.len() - 10]);
    fails(&["run".into(), p(&mamba1()), "--inputs".into(), p(&truncated)], 1, &[&p(&truncated), "not a valid safetensors file"]);

    // A header that is not JSON.
    let bad_json = dir.write("badjson.safetensors", raw_safetensors("{not json", &[]));
    fails(&["run".into(), p(&mamba1()), "--inputs".into(), p(&bad_json)], 1, &[&p(&bad_json), "not a valid safetensors file"]);

    // Data offsets that do not match the shape.
    let header = r#"{"u":{"dtype":"F32","shape":[2,8,5],"data_offsets":[0,16]}}"#;
    let mismatch = dir.write("mismatch.safetensors", raw_safetensors(header, &[0u8; 16]));
    fails(&["run".into(), p(&mamba1()), "--inputs".into(), p(&mismatch)], 1, &[&p(&mismatch), "not a valid safetensors file"]);

    // Empty.
    let empty = dir.write("empty.safetensors", b"");
    fails(&["run".into(), p(&mamba1()), "--inputs".into(), p(&empty)], 1, &[&p(&empty)]);
}

#[test]
fn missing_inputs_file_is_named() {
    let dir = TempDir::new("missing-inputs-file");
    let missing = dir.path("nope.safetensors");
    fails(&["run".into(), p(&mamba1()), "--inputs".into(), p(&missing)], 1, &[&p(&missing)]);
}

#[test]
fn pinned_dtype_rejects_another_dtype() {
    let dir = TempDir::new("pinned");
    let spec = dir.write("pinned.ssm", "layer P {\n    dims n;\n    input x: f32[n];\n    output y = exp(x);\n}\n");
    let mut inputs = TensorMap::new();
    inputs.insert("x".into(), tensor(DType::BF16, &[4], -1.0, 1.0, 1));
    let file = dir.path("x-bf16.safetensors");
    io::save(&file, &inputs).unwrap();
    fails(&["run".into(), p(&spec), "--inputs".into(), p(&file)], 1, &["input `x` is bf16", "requires f32"]);

    // In f32 it runs, and gives exp(x).
    let mut inputs = TensorMap::new();
    inputs.insert("x".into(), HostTensor::from_f64(DType::F32, vec![3], &[0.0, 1.0, -1.0]).unwrap());
    let (file, out) = (dir.path("x-f32.safetensors"), dir.path("y.safetensors"));
    io::save(&file, &inputs).unwrap();
    ok(&["run", &p(&spec), "--inputs", &p(&file), "--out", &p(&out), "--out-dtype", "f64"]);
    let y = io::load(&out).unwrap()["y"].to_f64();
    assert_eq!(y, vec![1.0, 1f64.exp(), (-1f64).exp()]);
}

#[test]
fn unwritable_out_path_is_named() {
    let dir = TempDir::new("unwritable");
    let out = dir.path("no-such-dir").join("out.safetensors");
    fails(&["run".into(), p(&mamba1()), "--random".into(), "--dims".into(), DIMS.into(), "--out".into(), p(&out)], 1, &[&p(&out)]);
    let ins = dir.path("no-such-dir").join("ins.safetensors");
    fails(&["run".into(), p(&mamba1()), "--random".into(), "--dims".into(), DIMS.into(), "--save-inputs".into(), p(&ins)], 1, &[&p(&ins)]);
}

// ---------------------------------------------------------------------------------------------
// run: mistakes in --dims
// ---------------------------------------------------------------------------------------------

fn random_with_dims(dims: &str, code: i32, needles: &[&str]) -> String {
    fails(&["run", &p(&mamba1()), "--random", "--dims", dims], code, needles)
}

#[test]
fn dims_unknown_dim_is_named() {
    let line = random_with_dims("batch=2,dim=8,len=5,state=4,heads=2", 1, &["--dims", "`heads`"]);
    assert!(line.contains("batch, dim, len, state"), "the error lists the layer's dims: {line}");
}

#[test]
fn dims_missing_a_needed_dim_is_named() {
    random_with_dims("batch=2,dim=8,len=5", 1, &["--dims", "`state`"]);
    random_with_dims("dim=8,len=5,state=4", 1, &["--dims", "`batch`"]);
}

#[test]
fn dims_bad_sizes_are_named() {
    random_with_dims("batch=0,dim=8,len=5,state=4", 1, &["--dims", "`batch`", "positive integer", "`0`"]);
    random_with_dims("batch=2,dim=eight,len=5,state=4", 1, &["--dims", "`dim`", "positive integer", "`eight`"]);
    random_with_dims("batch=2,dim=8,len=-5,state=4", 1, &["--dims", "`len`", "`-5`"]);
    random_with_dims("batch=2,dim=8,len=5,state=", 1, &["--dims", "`state`"]);
    random_with_dims("batch=2,dim=8,len=5,state=99999999999999999999999", 1, &["--dims", "`state`"]);
    random_with_dims("batch=2,dim=8,len=5,state4", 1, &["--dims", "`state4`"]);
    random_with_dims("batch=2,batch=3,dim=8,len=5,state=4", 1, &["--dims", "`batch`", "twice"]);
}

#[test]
fn dims_too_large_to_make_is_an_error_not_a_crash() {
    // The element count overflows usize.
    random_with_dims("batch=4294967296,dim=4294967296,len=4294967296,state=1", 1, &["--dims", "`u`", "too large"]);
    // It fits in usize but not in any memory (8 PB of f64).
    random_with_dims("batch=100000,dim=100000,len=100000,state=1", 1, &["--dims", "`u`", "too large"]);
}

// ---------------------------------------------------------------------------------------------
// run: mistakes in the flags
// ---------------------------------------------------------------------------------------------

#[test]
fn neither_inputs_nor_random() {
    fails(&["run".into(), p(&mamba1())], 1, &["--inputs", "--random"]);
}

#[test]
fn both_inputs_and_random() {
    let dir = TempDir::new("both");
    let file = dir.path("inputs.safetensors");
    io::save(&file, &mamba1_inputs(2, 8, 5, 4)).unwrap();
    fails(&["run", &p(&mamba1()), "--inputs", &p(&file), "--random", "--dims", DIMS], 2, &["--inputs", "--random", "cannot be used with"]);
    fails(&["run", &p(&mamba1()), "--random", "--dims", DIMS, "--inputs", &p(&file)], 2, &["--inputs", "--random", "cannot be used with"]);
}

#[test]
fn random_flags_need_random_and_dims() {
    fails(&["run", &p(&mamba1()), "--random"], 2, &["--dims"]);
    fails(&["run", &p(&mamba1()), "--dims", DIMS], 2, &["--random"]);
    fails(&["run", &p(&mamba1()), "--seed", "3"], 2, &["--random"]);
}

#[test]
fn unknown_flag_is_named() {
    fails(&["run", &p(&mamba1()), "--random", "--dims", DIMS, "--frobnicate"], 2, &["--frobnicate"]);
    fails(&["check", &p(&mamba1()), "--frobnicate"], 2, &["--frobnicate"]);
}

#[test]
fn unknown_out_dtype_is_named() {
    let line = fails(&["run", &p(&mamba1()), "--random", "--dims", DIMS, "--out-dtype", "f8"], 2, &["--out-dtype", "f8"]);
    assert!(line.contains("bf16"), "the error lists the dtypes: {line}");
    fails(&["run", &p(&mamba1()), "--random", "--dims", DIMS, "--dtype", "int8"], 2, &["--dtype", "int8"]);
    fails(&["run", &p(&mamba1()), "--random", "--dims", DIMS, "--backend", "tpu"], 2, &["--backend", "tpu", "interp"]);
    // a known backend this build or machine cannot run is a plain error, not a usage error
    if !cfg!(feature = "cuda") {
        fails(&["run", &p(&mamba1()), "--random", "--dims", DIMS, "--backend", "cuda"], 1, &["cuda", "not built in"]);
    }
    fails(&["run", &p(&mamba1()), "--random", "--dims", DIMS, "--seed", "minus-one"], 2, &["--seed", "minus-one"]);
}

#[test]
fn usage_errors_without_a_subcommand_or_spec() {
    let no_args: [&str; 0] = [];
    fails(&no_args, 2, &["check", "run"]);
    fails(&["run"], 2, &["<SPEC>"]);
    fails(&["check"], 2, &["<SPEC>"]);
    fails(&["frobnicate", "x.ssm"], 2, &["frobnicate"]);
    fails(&["compile", "/nonexistent/x.ssm"], 1, &["/nonexistent/x.ssm"]);
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/mamba1.ssm");
    fails(&["compile", spec, "--tile", "3"], 1, &["--tile 3", "1, 2, 4, 8, 16 or 32"]);
    fails(&["compile", spec, "--lanes", "--tile", "8"], 2, &["--tile", "--lanes"]);
    fails(&["compile", spec, "--warp-scan", "--chunked"], 2, &["--warp-scan", "--chunked"]);
    fails(&["compile", spec, "--lanes", "3"], 1, &["lane width 3", "1, 2, 4, 8 or 16"]);
    fails(&["compile", spec, "--lanes", "0"], 1, &["--lanes 0", "1, 2, 4, 8 or 16"]);
    fails(&["compile", spec, "--chunked", "--chunks", "12"], 1, &["--chunks 12", "power of two from 2 to 256"]);
    fails(&["compile", spec, "--chunked", "--chunks", "512"], 1, &["--chunks 512"]);
    fails(&["compile", spec, "--chunks", "8"], 2, &["--chunked"]);
    fails(&["compile", spec, "--stream-out"], 2, &["--warp-scan"]);
    fails(&["compile", spec, "--block", "48"], 1, &["--block 48", "32, 64, 128 or 256"]);
    fails(&["compile", spec, "--block", "512"], 1, &["--block 512"]);
}

#[test]
fn compile_prints_the_warp_scan_when_asked() {
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/mamba1.ssm");
    let ptx = ok(&["compile", spec, "--target", "ptx", "--warp-scan", "--dims", "batch=1,dim=8,len=256,state=16"]);
    assert!(ptx.contains("wscan_smem") && ptx.contains(".maxnreg"), "{ptx}");
    assert!(!ptx.contains("st.global.L1::no_allocate"));
    let stream = ok(&["compile", spec, "--target", "ptx", "--warp-scan", "--stream-out", "--dims", "batch=1,dim=8,len=256,state=16"]);
    assert!(stream.contains("st.global.L1::no_allocate"), "{stream}");
    // 8 warps a block, a region of the combine each
    let big = ok(&["compile", spec, "--target", "ptx", "--warp-scan", "--block", "256", "--dims", "batch=1,dim=8,len=256,state=16"]);
    assert!(big.contains("wscan_smem[34816]"), "{big}");
    let ptx = ok(&["compile", spec, "--target", "ptx", "--dims", "batch=1,dim=8,len=256,state=16"]);
    assert!(!ptx.contains("wscan"));
    // lanes over the state: 16 lanes a row, or 4 lanes of 4 states each
    for (lanes, levels) in [(&["--lanes"][..], 4), (&["--lanes", "4"][..], 2)] {
        let mut args = vec!["compile", spec, "--dims", "batch=1,dim=8,len=1,state=16"];
        args.extend_from_slice(lanes);
        let ptx = ok(&args);
        assert_eq!(ptx.matches("shfl.sync.bfly").count(), levels, "{lanes:?}: {ptx}");
    }
}

#[test]
fn help_and_version_succeed() {
    let help = ok(&["--help"]);
    assert!(help.contains("check") && help.contains("run"), "{help}");
    let run_help = ok(&["run", "--help"]);
    for flag in ["--inputs", "--random", "--dims", "--seed", "--dtype", "--save-inputs", "--out", "--out-dtype", "--backend"] {
        assert!(run_help.contains(flag), "run --help lists {flag}:\n{run_help}");
    }
    let version = ok(&["--version"]);
    assert!(version.starts_with("ssmc "), "{version}");
}

// ---------------------------------------------------------------------------------------------
// Never a panic
// ---------------------------------------------------------------------------------------------

/// Every mistake above and a few more in one sweep: non-zero exit, one `error:` line, and (checked
/// in `ssmc()` for every call in this file) no panic text or backtrace hint anywhere.
#[test]
fn no_mistake_panics() {
    let dir = TempDir::new("no-panic");
    let m = p(&mamba1());
    let garbage = p(&dir.write("garbage.st", [0xffu8; 64]));
    let huge_header = p(&dir.write("huge.st", u64::MAX.to_le_bytes()));
    let not_utf8 = p(&dir.write("not-utf8.ssm", [0xffu8, 0xfe, 0x00, 0x41]));
    let empty_spec = p(&dir.write("empty.ssm", ""));
    let spec_as_inputs = m.clone();
    let cases: Vec<Vec<String>> = vec![
        vec![],
        vec!["check".into(), not_utf8],
        vec!["check".into(), empty_spec],
        vec!["check".into(), garbage.clone()],
        vec!["run".into(), m.clone(), "--inputs".into(), garbage],
        vec!["run".into(), m.clone(), "--inputs".into(), huge_header],
        vec!["run".into(), m.clone(), "--inputs".into(), spec_as_inputs],
        vec!["run".into(), m.clone(), "--inputs".into(), p(&dir.0)],
        vec!["run".into(), m.clone(), "--random".into(), "--dims".into(), "".into()],
        vec!["run".into(), m.clone(), "--random".into(), "--dims".into(), ",,,".into()],
        vec!["run".into(), m.clone(), "--random".into(), "--dims".into(), "=".into()],
        vec!["run".into(), m.clone(), "--random".into(), "--dims".into(), "batch==2".into()],
        vec!["run".into(), m.clone(), "--random".into(), "--dims".into(), "batch=18446744073709551615,dim=2,len=1,state=1".into()],
        vec!["run".into(), m.clone(), "--random".into(), "--dims".into(), DIMS.into(), "--seed".into(), "-1".into()],
        vec!["run".into(), m, "--out-dtype".into(), "".into()],
    ];
    for args in &cases {
        let out = ssmc(args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "ssmc {args:?} should fail");
        assert!(matches!(out.status.code(), Some(1) | Some(2)), "ssmc {args:?}: exit {:?}, stderr:\n{stderr}", out.status.code());
        assert_eq!(stderr.lines().count(), 1, "ssmc {args:?}: one stderr line, got:\n{stderr}");
        assert!(stderr.starts_with("error: "), "ssmc {args:?}:\n{stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// explain

#[test]
fn explain_prints_both_plans_the_rules_and_the_costs() {
    let out = ok(&["explain".as_ref(), mamba1().as_os_str()]);
    for needle in [
        "unfused: 11 kernels",
        "fused: 1 kernel,",
        "rules fired:",
        "exp-to-exp2",
        "hoist-exp2-scale-out-of-scan",
        "e-graph:",
        "stopped: saturated",
        "bytes moved: 2.22 GB -> 50.70 MB (43.7x less); launches: 11 -> 1",
        // 11 launches at 64 KiB-equivalent each on top of the bytes, and one
        "cost (bytes + 65.54 kB per launch): 2.2158e9 -> 5.0770e7",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
}

#[test]
fn explain_json_and_dot() {
    let dir = TempDir::new("explain-json");
    let dot = dir.path("plan.dot");
    let out = ok(&["explain", &p(&mamba1()), "--dims", "batch=2,len=512", "--json", "--dot", &p(&dot)]);
    assert!(out.starts_with('{') && out.trim_end().ends_with('}'), "{out}");
    for needle in ["\"unfused\": {\"kernels\": 11", "\"fused\": {\"kernels\": 1", "\"bytes\": ", "\"rules_fired\": {", "\"batch\": 2", "\"len\": 512", "\"state\": 16"] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
    let dot = std::fs::read_to_string(dot).unwrap();
    assert!(dot.starts_with("digraph") && dot.contains("cluster_0"), "{dot}");
    // at the default sizes: the bytes of both plans and the costs (bytes + 65536 per launch)
    let out = ok(&["explain", &p(&mamba1()), "--json"]);
    for needle in [
        "\"unfused\": {\"kernels\": 11, \"launches\": 11, \"bytes\": 2215063552,",
        "\"fused\": {\"kernels\": 1, \"launches\": 1, \"bytes\": 50704384,",
        "\"cost_before\": 2215784448",
        "\"cost_after\": 50769920",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
}

#[test]
fn explain_is_the_same_in_every_process() {
    for name in ["mamba1.ssm", "mamba1_conv.ssm", "s4d.ssm"] {
        let args = ["explain", &p(&example(name)), "--json"];
        assert_eq!(ok(&args), ok(&args), "{name}");
    }
}

#[test]
fn explain_with_bf16_inputs_moves_fewer_bytes() {
    let bytes = |dtype: &str| {
        let out = ok(&["explain", &p(&mamba1()), "--json", "--dtype", dtype]);
        let at = out.find("\"fused\": {\"kernels\": 1, \"launches\": 1, \"bytes\": ").unwrap();
        let rest = &out[at..];
        let rest = &rest[rest.find("\"bytes\": ").unwrap() + 9..];
        rest[..rest.find(',').unwrap()].parse::<u64>().unwrap()
    };
    assert!(bytes("bf16") < bytes("f32"));
}

#[test]
fn explain_errors_are_one_line() {
    fails(&["explain", &p(&mamba1()), "--dims", "sate=4"], 1, &["sate"]);
    fails(&["explain", &p(&mamba1()), "--dims", "len=0"], 1, &["len"]);
    fails(&["explain", &p(&mamba1()), "--dtype", "f8"], 2, &["f8"]);
    fails(&["explain", &p(&mamba1()), "--dot", "/nonexistent-dir/x.dot"], 1, &["/nonexistent-dir/x.dot"]);
}

#[test]
fn schedule_is_a_gpu_option_with_known_names() {
    let step = p(&example("mamba1_step.ssm"));
    let dims = "batch=1,dim=8,len=1,state=16";
    fails(&["bench", step.as_str(), "--dims", dims, "--schedule", "lanes4"], 1, &["--schedule", "--backend cuda"]);
    fails(&["run", step.as_str(), "--random", "--dims", dims, "--backend", "cpu", "--schedule", "lanes4"], 1, &["--backend cuda"]);
    // the name is checked before any GPU is looked for
    fails(&["run", step.as_str(), "--random", "--dims", dims, "--backend", "cuda", "--schedule", "lanez"], 1, &["unknown GPU schedule `lanez`", "lanes4"]);
    fails(&["run", step.as_str(), "--random", "--dims", dims, "--backend", "cuda", "--schedule", "lanes4+block48"], 1, &["unknown GPU schedule `lanes4+block48`", "+block64"]);
}

#[test]
fn seq_chunk_is_a_cpu_option_in_steps_of_four() {
    let m = p(&mamba1());
    let dims = "batch=1,dim=4,len=16,state=8";
    fails(&["bench", m.as_str(), "--dims", dims, "--seq-chunk", "6"], 1, &["--seq-chunk 6", "multiple of 4"]);
    fails(&["bench", m.as_str(), "--dims", dims, "--backend", "cuda", "--seq-chunk", "8"], 1, &["--seq-chunk", "--backend cpu"]);
    // chunks of 8 steps and none at all time the same plans, each checked against the oracle
    for chunk in ["8", "0"] {
        let out = ok(&["bench", m.as_str(), "--dims", dims, "--reps", "1", "--json", "--seq-chunk", chunk]);
        assert!(out.contains("\"fused_ms\""), "{out}");
        let err = &out[out.find("\"max_abs_err\": ").unwrap() + 15..];
        let err: f64 = err[..err.find([',', '}']).unwrap()].trim().parse().unwrap();
        assert!(err < 1e-4, "chunk {chunk}: max_abs_err {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Gradients
// ---------------------------------------------------------------------------------------------

#[test]
fn grad_prints_a_backward_that_checks() {
    let dir = TempDir::new("grad");
    let text = ok(&["grad", &p(&mamba1())]);
    assert!(text.starts_with("layer Mamba1_grad {"), "{text}");
    for want in ["input d_out: [batch, dim, len];", "output d_B: [batch, state, len] =", "output d_delta_bias ="] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
    let spec = dir.write("back.ssm", &text);
    ok(&["check", &p(&spec)]);
}

#[test]
fn run_with_grad_writes_outputs_and_gradients_alike_on_every_backend() {
    let dir = TempDir::new("run-grad");
    let mut got = Vec::new();
    for backend in ["interp", "cpu"] {
        let out = dir.path(&format!("{backend}.safetensors"));
        let args = ["run", &p(&mamba1()), "--random", "--dims", "batch=2,dim=3,len=7,state=4", "--grad", "--backend", backend, "--out", &p(&out)];
        ok(&args);
        got.push(io::load(&out).unwrap());
    }
    let names: Vec<&String> = got[0].keys().collect();
    assert_eq!(names, ["d_A", "d_B", "d_C", "d_D", "d_delta", "d_delta_bias", "d_u", "d_z", "out"]);
    assert_eq!(got[0]["d_B"].shape(), [2, 4, 7], "d_B is laid out as B");
    for (name, t) in &got[0] {
        for (a, b) in t.to_f64().iter().zip(got[1][name].to_f64()) {
            assert!((a - b).abs() <= 1e-3 * (1.0 + a.abs()), "{name}: interp {a}, cpu {b}");
        }
    }
}

#[test]
fn cotangents_come_from_a_file_and_must_fit() {
    let dir = TempDir::new("cotangents");
    let inputs = dir.path("in.safetensors");
    ok(&["run", &p(&mamba1()), "--random", "--dims", "batch=1,dim=2,len=3,state=2", "--save-inputs", &p(&inputs)]);
    fails(&["run", &p(&mamba1()), "--inputs", &p(&inputs), "--grad"], 1, &["--cotangents"]);
    let good = dir.path("dout.safetensors");
    io::save(&good, &TensorMap::from([("d_out".to_string(), tensor(DType::F32, &[1, 2, 3], -1.0, 1.0, 3))])).unwrap();
    let text = ok(&["run", &p(&mamba1()), "--inputs", &p(&inputs), "--cotangents", &p(&good)]);
    assert!(text.contains("d_A: f32 [2, 2]"), "{text}");
    let wrong_name = dir.path("wrong.safetensors");
    io::save(&wrong_name, &TensorMap::from([("out".to_string(), tensor(DType::F32, &[1, 2, 3], -1.0, 1.0, 3))])).unwrap();
    fails(&["run", &p(&mamba1()), "--inputs", &p(&inputs), "--cotangents", &p(&wrong_name)], 1, &["unexpected cotangent `out`", "`d_out`"]);
    let wrong_shape = dir.path("shape.safetensors");
    io::save(&wrong_shape, &TensorMap::from([("d_out".to_string(), tensor(DType::F32, &[1, 3, 2], -1.0, 1.0, 3))])).unwrap();
    fails(&["run", &p(&mamba1()), "--inputs", &p(&inputs), "--cotangents", &p(&wrong_shape)], 1, &["`d_out` has shape [1, 3, 2]", "[1, 2, 3]"]);
    let none = dir.path("none.safetensors");
    io::save(&none, &TensorMap::new()).unwrap();
    fails(&["run", &p(&mamba1()), "--inputs", &p(&inputs), "--cotangents", &p(&none)], 1, &["missing cotangent `d_out`"]);
}

#[test]
fn explain_grad_says_what_the_fused_backward_keeps() {
    let text = ok(&["explain", &p(&mamba1()), "--grad", "--dims", "batch=1,dim=16,len=64,state=4"]);
    assert!(text.contains("layer Mamba1_grad"), "{text}");
    assert!(text.contains("forward values the fused backward keeps in memory"), "{text}");
    // on the CPU, one kernel replays Mamba's states per chunk and sums d_B and d_C across rows:
    // nothing of the forward is kept, the discretization is recomputed where it is read
    assert!(text.contains(" forwards per chunk; sums d_B, d_C across rows"), "{text}");
    assert!(text.contains("keeps in memory:\n  none\n"), "{text}");
    assert!(!text.contains("[batch, dim, len, state]  "), "{text}");
    assert!(text.contains("forward values it recomputes in registers, by kernel:") && text.contains("softplus"), "{text}");
    // the GPU's plans keep to the row template: its fused backward keeps the states
    let gpu = ok(&["explain", &p(&mamba1()), "--grad", "--backend", "cuda", "--dims", "batch=1,dim=16,len=64,state=4"]);
    assert!(gpu.contains(" = scan ") && gpu.contains("[batch, dim, len, state]"), "{gpu}");
    assert!(!gpu.contains("replays"), "{gpu}");
}

#[test]
fn bench_grad_times_forward_and_backward() {
    let text = ok(&["bench", &p(&mamba1()), "--grad", "--dims", "batch=1,dim=4,len=16,state=2", "--reps", "1", "--json"]);
    for key in ["\"forward\": {", "\"backward\": {", "\"bwd_ms\": ", "\"bwd_unfused_ms\": ", "\"fwd_train_ms\": ", "\"bwd_bytes\": "] {
        assert!(text.contains(key), "{key} in {text}");
    }
}
