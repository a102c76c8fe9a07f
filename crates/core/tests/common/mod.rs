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
