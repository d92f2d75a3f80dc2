//! `SSMC_DUMP=ir,plan,kir,ptx,clif,asm`: print the pipeline's stages to stderr as they are made.

/// Whether `SSMC_DUMP` names `stage`.
pub fn wants(stage: &str) -> bool {
    std::env::var("SSMC_DUMP").is_ok_and(|v| v.split(',').any(|s| s.trim() == stage))
}

/// Prints `text` under a header when `SSMC_DUMP` names `stage`.
pub fn dump(stage: &str, title: &str, text: impl FnOnce() -> String) {
    if wants(stage) {
        eprintln!("; ---- {stage}: {title}\n{}", text());
    }
}
