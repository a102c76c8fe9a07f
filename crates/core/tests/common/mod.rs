//! Helpers shared by the integration tests (`mod common;` in each).

/// 64 images of 3×16×16 whose class (0..4) is which quadrant is bright: learnable in a few steps.
pub fn quadrant_data() -> (Vec<u8>, Vec<i64>) {
    let (n, side) = (64usize, 16usize);
    let mut pixels = vec![20u8; n * 3 * side * side];
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 4;
        labels.push(class as i64);
        let (oy, ox) = ((class / 2) * side / 2, (class % 2) * side / 2);
        for c in 0..3 {
            for y in oy..oy + side / 2 {
                for x in ox..ox + side / 2 {
                    // A little per-image texture so images are not identical.
                    pixels[((i * 3 + c) * side + y) * side + x] = 200 + ((i * 7 + x + y) % 40) as u8;
                }
            }
        }
    }
    (pixels, labels)
}

/// libtorch's random generator is one per process, and these tests seed it and then build networks and draw
/// augmentations from it: two tests running at once (cargo runs a binary's tests on several threads) would draw
/// from each other's sequence, and two trainers meant to start alike would not. A test that seeds holds this for
/// its whole run.
#[allow(dead_code)] // not every test binary that includes this module seeds
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
