//! The oracle's Mamba-1 against an independent plain-loop implementation of the formula in
//! DESIGN.md, and the recurrent-state contract (decode steps and chunks compose to the full scan).

use proptest::prelude::*;
use ssmc::ir::DType;
use ssmc::random::{random_inputs, Rng};
use ssmc::runtime::{HostTensor, TensorMap};
use ssmc::Layer;
use std::collections::BTreeMap;
use std::path::Path;

fn example(name: &str) -> Layer {
    Layer::from_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name)).unwrap()
}

fn dims(b: usize, d: usize, l: usize, n: usize) -> BTreeMap<String, usize> {
    [("batch", b), ("dim", d), ("len", l), ("state", n), ("width", 4)].into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn inputs(layer: &Layer, d: &BTreeMap<String, usize>, seed: u64) -> TensorMap {
    let mut dd = d.clone();
    dd.retain(|k, _| layer.graph().dim(k).is_some());
    random_inputs(layer.graph(), &dd, DType::F64, seed).unwrap()
}

fn softplus(x: f64) -> f64 {
    if x > 30.0 { x } else { x.exp().ln_1p() }
}

/// Mamba-1 from DESIGN.md, written out with plain loops over `[batch, dim, len]`, `[dim, state]`
/// and `[batch, state, len]`; `zoh_b` switches Bbar from Euler (`dt B`) to exact ZOH.
fn mamba_by_hand(x: &TensorMap, b: usize, d: usize, l: usize, n: usize, zoh_b: bool, h0: Option<&[f64]>) -> (Vec<f64>, Vec<f64>) {
    let g = |name: &str| x[name].to_f64();
    let (u, delta, z, a, bm, cm, dv, bias) = (g("u"), g("delta"), g("z"), g("A"), g("B"), g("C"), g("D"), g("delta_bias"));
    let mut out = vec![0.0; b * d * l];
    let mut last = vec![0.0; b * d * n];
    for bi in 0..b {
        for di in 0..d {
            let mut h: Vec<f64> = (0..n).map(|ni| h0.map_or(0.0, |h0| h0[(bi * d + di) * n + ni])).collect();
            for li in 0..l {
                let bdl = (bi * d + di) * l + li;
                let dt = softplus(delta[bdl] + bias[di]);
                let mut y = 0.0;
                for ni in 0..n {
                    let an = a[di * n + ni];
                    let bn = bm[(bi * n + ni) * l + li];
                    let bbar = if zoh_b { ((dt * an).exp() - 1.0) / an * bn } else { dt * bn };
                    h[ni] = (dt * an).exp() * h[ni] + bbar * u[bdl];
                    y += cm[(bi * n + ni) * l + li] * h[ni];
                }
                y += dv[di] * u[bdl];
                out[bdl] = y * z[bdl] / (1.0 + (-z[bdl]).exp());
            }
            for ni in 0..n {
                last[(bi * d + di) * n + ni] = h[ni];
            }
        }
    }
    (out, last)
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-10 * (1.0 + w.abs()), "{what}[{i}]: oracle {g}, by hand {w}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(ssmc::ir::gen::test_cases(24)))]

    #[test]
    fn mamba1_oracle_matches_the_formula(b in 1usize..3, d in 1usize..5, l in 1usize..9, n in 1usize..5, seed in any::<u64>()) {
        let layer = example("mamba1.ssm");
        let x = inputs(&layer, &dims(b, d, l, n), seed);
        let out = layer.eval_as(&x, DType::F64).unwrap();
        prop_assert_eq!(out["out"].shape(), &[b, d, l][..]);
        assert_close(&out["out"].to_f64(), &mamba_by_hand(&x, b, d, l, n, false, None).0, "mamba1");
    }

    #[test]
    fn mamba1_zoh_oracle_matches_the_formula(b in 1usize..3, d in 1usize..4, l in 1usize..7, n in 1usize..4, seed in any::<u64>()) {
        let layer = example("mamba1_zoh.ssm");
        let x = inputs(&layer, &dims(b, d, l, n), seed);
        let out = layer.eval_as(&x, DType::F64).unwrap();
        assert_close(&out["out"].to_f64(), &mamba_by_hand(&x, b, d, l, n, true, None).0, "mamba1_zoh");
    }

    #[test]
    fn mamba1_step_carries_the_state(b in 1usize..3, d in 1usize..4, l in 1usize..7, n in 1usize..4, seed in any::<u64>()) {
        let layer = example("mamba1_step.ssm");
        let x = inputs(&layer, &dims(b, d, l, n), seed);
        let out = layer.eval_as(&x, DType::F64).unwrap();
        let (want_out, want_last) = mamba_by_hand(&x, b, d, l, n, false, Some(&x["h0"].to_f64()));
        assert_close(&out["out"].to_f64(), &want_out, "out");
        assert_close(&out["h_last"].to_f64(), &want_last, "h_last");
    }
}

/// The positions `lo..hi` along the last axis of a `[batch, x, len]` tensor.
fn slice_len(t: &HostTensor, lo: usize, hi: usize) -> HostTensor {
    let s = t.shape();
    let (outer, l) = (s[0] * s[1], s[2]);
    let v = t.to_f64();
    let data: Vec<f64> = (0..outer).flat_map(|o| v[o * l + lo..o * l + hi].to_vec()).collect();
    HostTensor::from_f64(DType::F64, vec![s[0], s[1], hi - lo], &data).unwrap()
}

/// Runs `mamba1_step` over the pieces `cuts` of the sequence, carrying `h_last` into `h0`, and
/// concatenates the outputs along `len`.
fn run_in_pieces(x: &TensorMap, b: usize, d: usize, l: usize, n: usize, cuts: &[usize]) -> Vec<f64> {
    let step = example("mamba1_step.ssm");
    let mut h = HostTensor::from_f64(DType::F64, vec![b, d, n], &vec![0.0; b * d * n]).unwrap();
    let mut rows = vec![vec![]; b * d];
    for w in cuts.windows(2) {
        let mut piece = TensorMap::new();
        for (name, v) in x {
            let sliced = if v.shape().len() == 3 && v.shape()[2] == l { slice_len(v, w[0], w[1]) } else { v.clone() };
            piece.insert(name.clone(), sliced);
        }
        piece.insert("h0".into(), h.clone());
        let r = step.eval_as(&piece, DType::F64).unwrap();
        let out = r["out"].to_f64();
        let len = w[1] - w[0];
        for (row, vals) in rows.iter_mut().enumerate() {
            vals.extend_from_slice(&out[row * len..(row + 1) * len]);
        }
        h = r["h_last"].clone();
    }
    rows.concat()
}

#[test]
fn decode_steps_and_chunks_compose_to_the_full_scan() {
    let (b, d, l, n) = (2, 3, 6, 4);
    let full = example("mamba1.ssm");
    let x = inputs(&full, &dims(b, d, l, n), 11);
    let whole = full.eval_as(&x, DType::F64).unwrap()["out"].to_f64();
    let token_by_token: Vec<usize> = (0..=l).collect();
    assert_close(&run_in_pieces(&x, b, d, l, n, &token_by_token), &whole, "token by token");
    assert_close(&run_in_pieces(&x, b, d, l, n, &[0, 2, 6]), &whole, "two chunks");
}

#[test]
fn random_inputs_respect_declared_ranges() {
    let layer = example("mamba1.ssm");
    let x = inputs(&layer, &dims(1, 4, 4, 4), 3);
    assert!(x["A"].to_f64().iter().all(|a| (-4.0..-0.5).contains(a)));
    assert!(x["u"].to_f64().iter().all(|a| (-1.0..1.0).contains(a)));
    let mut r = Rng::new(1);
    assert_ne!(r.next_u64(), r.next_u64());
}
