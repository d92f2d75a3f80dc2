//! Without a GPU (or without the `cuda` feature) the cuda backend is a clear error, never a
//! panic: CI runs this both ways (`./test.sh` builds once with `--features cuda`).

use ssmc::{Backend, Fusion, Layer};

#[test]
fn cuda_without_a_gpu_is_an_error_not_a_panic() {
    let layer = Layer::parse("layer L { dims n; input x: [n]; output y = exp(x); }").unwrap();
    match layer.compile(Backend::Cuda, Fusion::On) {
        Ok(_) => {
            // a real GPU is here: nothing to check about its absence
        }
        Err(e) => {
            let msg = e.to_string();
            if cfg!(feature = "cuda") {
                assert!(msg.contains("CUDA"), "{msg}");
            } else {
                assert_eq!(msg, "the cuda backend is not built in (rebuild with `--features cuda`)");
            }
        }
    }
}
