//! `SSMC_DUMP=ir,plan,kir,ptx,clif,asm`: print the pipeline's stages to stderr as they are made.
//! The one parser of the variable, for every crate that dumps a stage.

/// The stages a dump may name.
pub const STAGES: [&str; 6] = ["ir", "plan", "kir", "ptx", "clif", "asm"];

/// The stage names in `value`: comma-separated, spaces around a name ignored.
pub fn parse(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Whether `SSMC_DUMP` names `stage`.
pub fn wants(stage: &str) -> bool {
    std::env::var("SSMC_DUMP").is_ok_and(|v| parse(&v).any(|s| s == stage))
}

/// Prints `text` under a header when `SSMC_DUMP` names `stage`.
pub fn dump(stage: &str, title: &str, text: impl FnOnce() -> String) {
    if wants(stage) {
        eprintln!("; ---- {stage}: {title}\n{}", text());
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn names_are_trimmed_and_empty_ones_dropped() {
        assert_eq!(parse("ir, clif").collect::<Vec<_>>(), ["ir", "clif"]);
        assert_eq!(parse(" ptx ,,asm ").collect::<Vec<_>>(), ["ptx", "asm"]);
        assert_eq!(parse("").count(), 0);
    }
}
