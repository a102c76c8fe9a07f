//! The core end to end on CPU: a training step lowers the loss, evaluation counts, checkpoints round-trip.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use convkit_core::checkpoint::{load_network, load_optimizer, optimizer_path, save_network, save_optimizer};
use convkit_core::{
    evaluate, runtime, Dataset, Error, ModelSpec, Network, Normalization, OptimizerConfig, Precision, Trainer,
};
use tch::Device;

/// 64 images of 3×16×16 whose class (0..4) is which quadrant is bright: learnable in a few steps.
fn quadrant_data() -> (Vec<u8>, Vec<i64>) {
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

fn trainer(seed: u64) -> (Trainer, Dataset) {
    runtime::seed(seed);
    let net = Network::new(ModelSpec::reference([3, 16, 16], 4), Device::Cpu).unwrap();
    let (pixels, labels) = quadrant_data();
    let norm = Normalization {
        mean: vec![0.5; 3],
        std: vec![0.5; 3],
    };
    let data = Dataset::new(&pixels, &labels, [3, 16, 16], 4, norm, Device::Cpu).unwrap();
    (Trainer::new(net, OptimizerConfig::default()).unwrap(), data)
}

/// The loss of the first and the last of `steps` steps over the whole dataset.
fn full_batch_steps(t: &mut Trainer, data: &Dataset, steps: usize) -> (f64, f64) {
    let all: Vec<i64> = (0..data.len()).collect();
    let losses: Vec<f64> = (0..steps)
        .map(|_| t.step_indices(data, &all, None).unwrap().loss)
        .collect();
    (losses[0], losses[steps - 1])
}

#[test]
fn steps_lower_the_loss_and_evaluation_counts() {
    let (mut t, data) = trainer(1);
    let (first, last) = full_batch_steps(&mut t, &data, 16);
    assert!(last < first * 0.5, "loss went from {first} to {last}");

    let counts = evaluate(&t.net, &data, None, 10, &AtomicBool::new(false)).unwrap();
    assert_eq!(counts.count, 64);
    assert_eq!(counts.per_class_total(), vec![16; 4]);
    // Four classes: top-5 covers them all.
    assert_eq!(counts.top5_correct, 64);
    assert!(
        counts.top1_correct >= 56,
        "top-1 {} of 64 after training",
        counts.top1_correct
    );
    assert_eq!(counts.per_class_correct().iter().sum::<i64>(), counts.top1_correct);
}

#[test]
fn bad_labels_and_shapes_are_errors() {
    let (mut t, data) = trainer(2);
    let err = t.step_floats(&vec![0.0; 2 * 3 * 16 * 16], &[0, 9]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LabelOutOfRange {
                label: 9,
                position: 1,
                ..
            }
        ),
        "{err}"
    );
    let err = t.step_floats(&[0.0; 10], &[0]).unwrap_err();
    assert_eq!(err.code(), "BAD_SHAPE");
    let err = t.step_indices(&data, &[0, 64], None).unwrap_err();
    assert_eq!(err.code(), "BAD_SHAPE");
    let cancelled = evaluate(&t.net, &data, None, 8, &AtomicBool::new(true)).unwrap_err();
    assert_eq!(cancelled.code(), "CANCELLED");
}

#[test]
fn checkpoint_round_trip_resumes_identically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last.safetensors");
    let (mut t, data) = trainer(3);
    let batch: Vec<i64> = (0..32).collect();
    for _ in 0..3 {
        t.step_indices(&data, &batch, None).unwrap();
    }
    let meta = HashMap::from([("convkit.classes".to_string(), "[\"a\",\"b\",\"c\",\"d\"]".to_string())]);
    save_network(&t.net, &path, meta).unwrap();
    save_optimizer(&t.optimizer, &optimizer_path(&path)).unwrap();

    let (net, meta) = load_network(&path, Device::Cpu).unwrap();
    assert_eq!(meta["convkit.classes"], "[\"a\",\"b\",\"c\",\"d\"]");
    assert_eq!(net.spec, t.net.spec);
    let x = data.gather(&data.index_tensor(&batch).unwrap()).unwrap().0;
    let before = t.net.forward_t(&x, false).unwrap();
    assert!(before.equal(&net.forward_t(&x, false).unwrap()));

    // Two more steps in memory, and two after reloading weights and optimizer state: the same weights.
    let optimizer = load_optimizer(&net, &optimizer_path(&path)).unwrap();
    let mut resumed = Trainer { net, optimizer };
    for _ in 0..2 {
        t.step_indices(&data, &batch, None).unwrap();
        resumed.step_indices(&data, &batch, None).unwrap();
    }
    for ((name, a), (_, b)) in t.net.params.iter().zip(&resumed.net.params) {
        assert!(a.equal(b), "{name} differs after resuming");
    }
}

#[test]
fn corrupt_and_mismatched_checkpoints_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let (t, _) = trainer(4);
    save_network(&t.net, &path, HashMap::new()).unwrap();
    let bytes = std::fs::read(&path).unwrap();

    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_eq!(
        load_network(&truncated, Device::Cpu).unwrap_err().code(),
        "CORRUPT_CHECKPOINT"
    );

    let mut other = Network::new(ModelSpec::reference([3, 16, 16], 7), Device::Cpu).unwrap();
    let err = convkit_core::checkpoint::load_weights(&mut other, &path).unwrap_err();
    assert_eq!(err.code(), "CHECKPOINT_MISMATCH");
    assert!(
        err.to_string().contains("fc2.weight") && err.to_string().contains("[4, 512]"),
        "{err}"
    );

    assert_eq!(
        load_network(&dir.path().join("missing.safetensors"), Device::Cpu)
            .unwrap_err()
            .code(),
        "IO_ERROR"
    );
    // Nothing but the two checkpoints and the truncated copy: no temporary files left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn channels_last_computes_the_same_function() {
    let (mut t, data) = trainer(5);
    let x = data.gather(&data.index_tensor(&[0, 1, 2, 3]).unwrap()).unwrap().0;
    let plain = t.net.forward_t(&x, false).unwrap();
    t.net.set_channels_last(true).unwrap();
    let relaid = t.net.forward_t(&x, false).unwrap();
    assert!(plain.allclose(&relaid, 1e-5, 1e-5, false));
}

#[test]
fn bf16_keeps_fp32_weights_and_logits_and_still_learns() {
    let (mut t, data) = trainer(6);
    let x = data.gather(&data.index_tensor(&[0, 1, 2, 3]).unwrap()).unwrap().0;
    let full = t.net.forward_t(&x, false).unwrap();
    t.net.precision = Precision::Bf16;
    let low = t.net.forward_t(&x, false).unwrap();
    assert_eq!(low.kind(), tch::Kind::Float);
    // bfloat16 keeps 8 bits of mantissa: close to the fp32 logits, but not equal to them.
    assert!(low.allclose(&full, 0.05, 0.05, false));
    assert!(!low.allclose(&full, 1e-6, 1e-6, false));

    let (first, last) = full_batch_steps(&mut t, &data, 16);
    assert!(last < first * 0.5, "bf16 loss went from {first} to {last}");
    assert!(t.net.params.iter().all(|(_, p)| p.kind() == tch::Kind::Float));
    assert!(Precision::parse("fp16").is_err());
}

#[test]
fn augmentation_crops_and_flips_repeatably() {
    let (_, data) = trainer(6);
    let index = data.index_tensor(&(0..16).collect::<Vec<_>>()).unwrap();
    let plain = data.gather(&index).unwrap().0;
    let a = data.gather_with(&index, Some(42)).unwrap().0;
    let b = data.gather_with(&index, Some(42)).unwrap().0;
    let c = data.gather_with(&index, Some(43)).unwrap().0;
    assert_eq!(a.size(), plain.size());
    assert!(a.equal(&b), "one seed, one augmentation");
    assert!(!a.equal(&c), "another seed, another augmentation");
    assert!(!a.equal(&plain), "augmented images differ from the originals");
    // Every augmented image is a crop of its zero-padded original at an offset of 0..=8, maybe mirrored.
    for k in 0..16 {
        let padded = data.images.get(k).unsqueeze(0).constant_pad_nd([4, 4, 4, 4]);
        let target = a.get(k);
        let matches = (0..=8).any(|dy| {
            (0..=8).any(|dx| {
                let crop = padded.narrow(2, dy, 16).narrow(3, dx, 16);
                [crop.shallow_clone(), crop.flip([3])].iter().any(|c| {
                    data.normalization
                        .apply(c)
                        .unwrap()
                        .get(0)
                        .allclose(&target, 1e-6, 1e-6, false)
                })
            })
        });
        assert!(
            matches,
            "augmented image {k} is no shifted or mirrored crop of its original"
        );
    }
    // Padding is zero pixels, normalized to -1 with mean 0.5 and std 0.5: a shifted crop shows some.
    let min = a.min().double_value(&[]);
    assert!((min + 1.0).abs() < 1e-6, "padding normalizes to -1, got min {min}");
}
