//! The PTX of every example under every GPU schedule, input dtype and a few lengths, checked
//! against a manifest of SHA-256 digests (`tests/data/ptx_manifest.txt`), so that a change to
//! the emitter that should not change its output is shown byte-identical, and one that should
//! names every module it changed.
//!
//! A deliberate change updates the manifest in the same commit:
//!
//! ```text
//! SSMC_BLESS=1 cargo test --test ptx_manifest
//! ```
//!
//! `SSMC_PTX_DIR=/tmp/ptx cargo test --test ptx_manifest` also writes every module there, one
//! file each, to diff the text of two builds. Needs no GPU and no ptxas.

mod common;
use common::example;
use ssmc::ir::DType;
use ssmc::{Fusion, GpuSchedule};
use std::collections::BTreeMap;
use std::fmt::Write;

const MANIFEST: &str = "tests/data/ptx_manifest.txt";

const EXAMPLES: [&str; 7] = ["mamba1", "mamba1_conv", "mamba1_step", "mamba1_zoh", "reverse", "s4d", "sigmoid_noskip"];
const LENGTHS: [usize; 5] = [1, 100, 256, 512, 2048];

/// The schedules, by the names the bench prints, and the fusion each is emitted under.
const SCHEDULES: [(&str, Fusion); 16] = [
    ("warpscan", Fusion::On),
    ("warpscan+streamout", Fusion::On),
    ("warpscan+block64", Fusion::On),
    ("rows", Fusion::On),
    ("rows+tiles16+prefetch", Fusion::On),
    ("rows+tiles8+prefetch+block256", Fusion::On),
    ("rows+chunks+tiles16+prefetch", Fusion::On),
    ("rows+chunks8+tiles16+prefetch", Fusion::On),
    ("rows+chunks+tiles16", Fusion::On),
    ("lanes", Fusion::On),
    ("lanes2", Fusion::On),
    ("lanes4", Fusion::On),
    ("lanes8", Fusion::On),
    ("lanes16", Fusion::On),
    ("rows", Fusion::Off),
    ("rows+tiles16+prefetch", Fusion::Off),
];

/// Every module's name and text (or the error it gave, which is pinned too).
fn modules() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for ex in EXAMPLES {
        let layer = example(&format!("{ex}.ssm"));
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            for len in LENGTHS {
                let mut dims: BTreeMap<String, usize> = [("batch", 2), ("dim", 8), ("len", len), ("state", 16)].into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                if ex == "mamba1_conv" {
                    dims.insert("width".into(), 4);
                }
                for (name, fusion) in SCHEDULES {
                    let schedule: GpuSchedule = name.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
                    let text = match ssmc::gpu::ptx(&layer, fusion, &dims, dtype, schedule) {
                        Ok(t) => t,
                        Err(e) => format!("error: {e}\n"),
                    };
                    let fusion = if fusion == Fusion::Off { "-unfused" } else { "" };
                    out.push((format!("{ex}-{dtype}-{len}-{name}{fusion}"), text));
                }
            }
        }
    }
    out
}

#[test]
fn every_module_matches_the_manifest() {
    let modules = modules();
    if let Ok(dir) = std::env::var("SSMC_PTX_DIR") {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in &modules {
            std::fs::write(format!("{dir}/{name}.ptx"), text).unwrap();
        }
    }
    let mut manifest = String::new();
    for (name, text) in &modules {
        let _ = writeln!(manifest, "{}  {name}", hex(&sha256(text.as_bytes())));
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(MANIFEST);
    if std::env::var("SSMC_BLESS").is_ok() {
        std::fs::write(&path, &manifest).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).expect("the manifest (SSMC_BLESS=1 writes it)");
    let want: BTreeMap<&str, &str> = want.lines().filter_map(|l| l.split_once("  ").map(|(h, n)| (n, h))).collect();
    let got: BTreeMap<&str, &str> = manifest.lines().filter_map(|l| l.split_once("  ").map(|(h, n)| (n, h))).collect();
    let changed: Vec<&str> = got.iter().filter(|(n, h)| want.get(*n) != Some(*h)).map(|(n, _)| *n).collect();
    let gone: Vec<&str> = want.keys().filter(|n| !got.contains_key(*n)).copied().collect();
    assert!(
        changed.is_empty() && gone.is_empty(),
        "{} of {} PTX modules differ from {MANIFEST} (first: {:?}), {} are gone (first: {:?}); if the change is meant, \
         run `SSMC_BLESS=1 cargo test --test ptx_manifest` and commit the manifest",
        changed.len(),
        got.len(),
        &changed[..changed.len().min(8)],
        gone.len(),
        &gone[..gone.len().min(8)],
    );
}

#[test]
fn sha256_of_known_strings() {
    assert_eq!(hex(&sha256(b"")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(hex(&sha256(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    assert_eq!(hex(&sha256(long)), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    assert_eq!(hex(&sha256(&[b'a'; 1000])), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (FIPS 180-4), enough for a manifest of a few MB of text.
fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
        0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
        0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ];
    let mut h: [u32; 8] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let mut v = h;
        for i in 0..64 {
            let s1 = v[4].rotate_right(6) ^ v[4].rotate_right(11) ^ v[4].rotate_right(25);
            let ch = (v[4] & v[5]) ^ (!v[4] & v[6]);
            let t1 = v[7].wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
            let s0 = v[0].rotate_right(2) ^ v[0].rotate_right(13) ^ v[0].rotate_right(22);
            let maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
            let t2 = s0.wrapping_add(maj);
            v = [t1.wrapping_add(t2), v[0], v[1], v[2], v[3].wrapping_add(t1), v[4], v[5], v[6]];
        }
        for (a, b) in h.iter_mut().zip(v) {
            *a = a.wrapping_add(b);
        }
    }
    let mut out = [0u8; 32];
    for (i, word) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&word.to_be_bytes());
    }
    out
}
