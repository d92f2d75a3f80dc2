//! Validation with ptxas: the assembler's own verdict on every emitted kernel, with its
//! register and spill report.

use std::path::PathBuf;
use std::process::Command;

/// What ptxas said about one kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelReport {
    /// Entry name.
    pub name: String,
    /// Registers per thread.
    pub registers: u32,
    /// Bytes spilled (stores).
    pub spill_stores: u32,
    /// Bytes of local memory per thread (stack frame).
    pub local_bytes: u32,
}

/// Finds ptxas: `$SSMC_PTXAS`, then `ptxas` on `PATH`, then the PyPI wheel
/// `nvidia-cuda-nvcc-cu12` in the Python installs visible here.
pub fn find() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SSMC_PTXAS") {
        return Some(PathBuf::from(p));
    }
    if Command::new("ptxas").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Some(PathBuf::from("ptxas"));
    }
    let py = Command::new("python3")
        .args(["-c", "import nvidia.cuda_nvcc, os; print(os.path.join(list(nvidia.cuda_nvcc.__path__)[0], 'bin', 'ptxas'))"])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&py.stdout).trim());
    path.exists().then_some(path)
}

/// Assembles `ptx` for `sm_XX`; on failure the error is ptxas's log.
pub fn assemble(ptxas: &std::path::Path, ptx: &str, sm: u32) -> Result<Vec<KernelReport>, String> {
    let dir = std::env::temp_dir().join(format!("ssmc-ptxas-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let src = dir.join("k.ptx");
    std::fs::write(&src, ptx).map_err(|e| e.to_string())?;
    let out = Command::new(ptxas)
        .arg(format!("-arch=sm_{sm}"))
        .arg("-v")
        .arg(&src)
        .arg("-o")
        .arg(dir.join("k.cubin"))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", ptxas.display()))?;
    let _ = std::fs::remove_dir_all(&dir);
    let log = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(log);
    }
    Ok(parse_report(&log))
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn number_before(line: &str, word: &str) -> u32 {
    line.split(',')
        .find(|part| part.contains(word))
        .and_then(|part| part.split_whitespace().find_map(|t| t.parse().ok()))
        .unwrap_or(0)
}

/// Reads `ptxas -v` output: "Compiling entry function 'k'", then "Used N registers".
fn parse_report(log: &str) -> Vec<KernelReport> {
    let mut out: Vec<KernelReport> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or("").to_string();
            out.push(KernelReport { name, registers: 0, spill_stores: 0, local_bytes: 0 });
        } else if let Some(k) = out.last_mut() {
            if line.contains("bytes stack frame") {
                k.local_bytes = number_before(line, "bytes stack frame");
                k.spill_stores = number_before(line, "bytes spill stores");
            }
            if line.contains("Used") && line.contains("registers") {
                k.registers = line.split("Used ").nth(1).and_then(|s| s.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(0);
            }
        }
    }
    out
}
