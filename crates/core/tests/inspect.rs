//! The inspection math on CPU: embeddings are the mean of a feature map, neighbours are exact cosine top-k, and the
//! cross-validated probe learns separable classes without seeing each row's own label.

mod common;

use std::sync::atomic::AtomicBool;

use convkit_core::inspect::{cross_validated_probabilities, embeddings, nearest_neighbours, ProbeOptions};
use convkit_core::{runtime, Dataset, ModelSpec, Network, Normalization};
use tch::Device;

#[test]
fn embeddings_average_the_last_feature_map_and_resize_to_the_network() {
    let _serial = common::serial();
    runtime::seed(3);
    let net = Network::new(ModelSpec::reference([3, 32, 32], 4), Device::Cpu).unwrap();
    let (pixels, labels) = common::quadrant_data();
    let norm = Normalization {
        mean: vec![0.5; 3],
        std: vec![0.5; 3],
    };
    // Stored at 16 pixels, embedded by a 32-pixel network: resized on the way.
    let data = Dataset::new(&pixels, &labels, [3, 16, 16], 4, norm, Device::Cpu).unwrap();
    let all: Vec<i64> = (0..data.len()).collect();
    let whole = embeddings(&net, &data, &all, 64, None, &AtomicBool::new(false)).unwrap();
    let batched = embeddings(&net, &data, &all, 7, None, &AtomicBool::new(false)).unwrap();
    assert_eq!(whole.values.len() as i64, data.len() * whole.dim);
    for (a, b) in whole.values.iter().zip(&batched.values) {
        assert!((a - b).abs() < 1e-5, "batching changes nothing: {a} vs {b}");
    }
    let cancelled = embeddings(&net, &data, &all, 8, None, &AtomicBool::new(true));
    assert!(matches!(cancelled, Err(convkit_core::Error::Cancelled)));
    let missing = embeddings(&net, &data, &all, 8, Some("no_such_layer"), &AtomicBool::new(false));
    assert!(missing.unwrap_err().to_string().contains("no_such_layer"));
}

#[test]
fn neighbours_are_the_most_cosine_similar_rows_never_the_row_itself() {
    // Rows: along x, along x scaled (same direction), along y, diagonal.
    let rows = [1.0f32, 0.0, 3.0, 0.0, 0.0, 1.0, 1.0, 1.0];
    let own = nearest_neighbours(&rows, 4, None, 2, 2).unwrap();
    assert_eq!(&own.indices[0..2], &[1, 3]);
    assert!((own.similarities[0] - 1.0).abs() < 1e-6);
    assert!((own.similarities[1] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    assert_eq!(own.indices[4], 3, "y's nearest is the diagonal");
    let keys = [0.0f32, 2.0, 5.0, 0.0];
    let across = nearest_neighbours(&rows, 4, Some((&keys, 2)), 2, 1).unwrap();
    assert_eq!(across.indices, vec![1, 1, 0, 0]);
    assert!(nearest_neighbours(&rows, 4, None, 2, 4).is_err(), "only 3 other rows");
    assert!(nearest_neighbours(&rows, 3, None, 2, 1).is_err(), "length checked");
}

#[test]
fn the_probe_predicts_each_fold_from_the_others() {
    // Two classes that differ in the first feature; the last row is labelled against its features.
    let n = 40;
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        let class = (i % 2) as i64;
        features.extend([if class == 1 { 2.0f32 } else { -2.0 }, (i as f32 * 0.37).sin()]);
        labels.push(if i == n - 1 { 1 - class } else { class });
    }
    let folds: Vec<i32> = (0..n).map(|i| (i % 4) as i32).collect();
    let p = cross_validated_probabilities(&features, n, 2, &labels, 2, &folds, ProbeOptions::default()).unwrap();
    for i in 0..n - 1 {
        let class = labels[i] as usize;
        assert!(p[i * 2 + class] > 0.6, "row {i}: {:?}", &p[i * 2..i * 2 + 2]);
        assert!((p[i * 2] + p[i * 2 + 1] - 1.0).abs() < 1e-5);
    }
    // Out of sample: the mislabelled row's own label was not fitted, so its probability stays low.
    let last = labels[n - 1] as usize;
    assert!(p[(n - 1) * 2 + last] < 0.4, "{:?}", &p[(n - 1) * 2..]);
    assert!(cross_validated_probabilities(&features, n, 2, &labels, 2, &vec![0; n], ProbeOptions::default()).is_err());
    let mut bad = labels.clone();
    bad[0] = 2;
    assert!(cross_validated_probabilities(&features, n, 2, &bad, 2, &folds, ProbeOptions::default()).is_err());
}
