//! The core end to end on CPU: a training step lowers the loss, evaluation counts, checkpoints round-trip.

mod common;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use convkit_core::augment::{Augment, Flip, PadMode, RandomErasing};
use convkit_core::averaging::{AveragingConfig, AveragingMode, DecayWarmup};
use convkit_core::checkpoint::{load_network, load_trainer, save_network, save_trainer};
use convkit_core::draw::Draw;
use convkit_core::loss::{LossConfig, Reduction};
use convkit_core::{
    evaluate, runtime, Dataset, Error, ModelSpec, Network, Normalization, OptimizerConfig, ParamGroup, Precision,
    Trainer, Tta,
};
use tch::{Device, Kind, Tensor};

fn trainer(seed: u64) -> (Trainer, Dataset) {
    runtime::seed(seed);
    let net = Network::new(ModelSpec::reference([3, 16, 16], 4), Device::Cpu).unwrap();
    let (pixels, labels) = common::quadrant_data();
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
    let _serial = common::serial();
    let (mut t, data) = trainer(1);
    let (first, last) = full_batch_steps(&mut t, &data, 16);
    assert!(last < first * 0.5, "loss went from {first} to {last}");

    let counts = evaluate(&t.net, &data, None, 10, Tta::None, &AtomicBool::new(false)).unwrap();
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
fn launched_steps_report_as_plain_steps_in_any_order_and_may_be_dropped() {
    let _serial = common::serial();
    let (mut plain, data) = trainer(2);
    let (mut launched, _) = trainer(2);
    let batches: Vec<Vec<i64>> = (0..3).map(|b| (b * 16..b * 16 + 16).collect()).collect();
    let expected: Vec<_> = batches
        .iter()
        .map(|b| plain.step_indices(&data, b, None).unwrap())
        .collect();
    let first = launched.launch_step_indices(&data, &batches[0], None).unwrap();
    let second = launched.launch_step_indices(&data, &batches[1], None).unwrap();
    // Read back out of order: each report is its own step's.
    let without_time = |mut s: convkit_core::StepOutput| {
        s.seconds = 0.0;
        s
    };
    let second = without_time(second.finish().unwrap());
    let first = without_time(first.finish().unwrap());
    assert_eq!(first, without_time(expected[0].clone()));
    assert_eq!(second, without_time(expected[1].clone()));
    // A step whose report is never read still trained.
    drop(launched.launch_step_indices(&data, &batches[2], None).unwrap());
    assert_eq!(launched.optimizer.step, 3);
    assert!(launched.net.params[0].tensor.equal(&plain.net.params[0].tensor));
}

#[test]
fn bad_labels_and_shapes_are_errors() {
    let _serial = common::serial();
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
    let cancelled = evaluate(&t.net, &data, None, 8, Tta::None, &AtomicBool::new(true)).unwrap_err();
    assert_eq!(cancelled.code(), "CANCELLED");
}

#[test]
fn checkpoint_round_trip_resumes_identically() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last.safetensors");
    let (mut t, data) = trainer(3);
    let batch: Vec<i64> = (0..32).collect();
    for _ in 0..3 {
        t.step_indices(&data, &batch, None).unwrap();
    }
    let meta = HashMap::from([("convkit.classes".to_string(), "[\"a\",\"b\",\"c\",\"d\"]".to_string())]);
    save_trainer(&t, &path, meta, true).unwrap();

    let (net, meta) = load_network(&path, Device::Cpu).unwrap();
    assert_eq!(meta["convkit.classes"], "[\"a\",\"b\",\"c\",\"d\"]");
    assert_eq!(net.spec, t.net.spec);
    let x = plain_batch(&data, &batch);
    let before = t.net.forward_t(&x, false).unwrap();
    assert!(before.equal(&net.forward_t(&x, false).unwrap()));

    // Two more steps in memory, and two after reloading weights and optimizer state: the same weights.
    let (mut resumed, _, _) = load_trainer(&path, Device::Cpu).unwrap();
    assert_eq!(resumed.optimizer.step, 3);
    for _ in 0..2 {
        t.step_indices(&data, &batch, None).unwrap();
        resumed.step_indices(&data, &batch, None).unwrap();
    }
    for (a, b) in t.net.params.iter().zip(&resumed.net.params) {
        assert!(a.tensor.equal(&b.tensor), "{} differs after resuming", a.name);
    }
}

#[test]
fn corrupt_and_mismatched_checkpoints_are_errors() {
    let _serial = common::serial();
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
    // Like load_state_dict(strict=True): every mis-shaped key in one message.
    let msg = err.to_string();
    assert!(
        msg.contains("2 mis-shaped") && msg.contains("fc2.weight: [4, 512] in the file, [7, 512]"),
        "{msg}"
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
    let _serial = common::serial();
    let (mut t, data) = trainer(5);
    let x = plain_batch(&data, &[0, 1, 2, 3]);
    let plain = t.net.forward_t(&x, false).unwrap();
    t.net.set_channels_last(true).unwrap();
    let relaid = t.net.forward_t(&x, false).unwrap();
    assert!(plain.allclose(&relaid, 1e-5, 1e-5, false));
}

#[test]
fn bf16_keeps_fp32_weights_and_logits_and_still_learns() {
    let _serial = common::serial();
    let (mut t, data) = trainer(6);
    let x = plain_batch(&data, &[0, 1, 2, 3]);
    let full = t.net.forward_t(&x, false).unwrap();
    t.net.precision = Precision::Bf16;
    let low = t.net.forward_t(&x, false).unwrap();
    assert_eq!(low.kind(), tch::Kind::Float);
    // bfloat16 keeps 8 bits of mantissa: close to the fp32 logits, but not equal to them.
    assert!(low.allclose(&full, 0.05, 0.05, false));
    assert!(!low.allclose(&full, 1e-6, 1e-6, false));

    let (first, last) = full_batch_steps(&mut t, &data, 16);
    assert!(last < first * 0.5, "bf16 loss went from {first} to {last}");
    assert!(t.net.params.iter().all(|p| p.tensor.kind() == tch::Kind::Float));
    assert!(Precision::parse("fp16").is_err());
}

fn plain_batch(data: &Dataset, indices: &[i64]) -> Tensor {
    data.batch(indices, [16, 16], None).unwrap().0
}

fn draw(batch_seed: u64, epoch: i64) -> Draw {
    Draw {
        batch_seed,
        run_seed: 7,
        epoch,
    }
}

/// Whether `target` is a crop of `original` (zero- or reflect-padded by `p`), maybe mirrored.
fn is_shifted_crop(data: &Dataset, original: &Tensor, target: &Tensor, p: i64, reflect: bool) -> bool {
    let image = original.unsqueeze(0).to_kind(tch::Kind::Float);
    let padded = if reflect {
        image.reflection_pad2d([p, p, p, p])
    } else {
        image.constant_pad_nd([p, p, p, p])
    };
    (0..=2 * p).any(|dy| {
        (0..=2 * p).any(|dx| {
            let crop = padded.narrow(2, dy, 16).narrow(3, dx, 16);
            [crop.shallow_clone(), crop.flip([3])].iter().any(|c| {
                data.normalization
                    .apply(c)
                    .unwrap()
                    .get(0)
                    .allclose(target, 1e-6, 1e-6, false)
            })
        })
    })
}

#[test]
fn augmentation_crops_and_flips_repeatably() {
    let _serial = common::serial();
    let (_, data) = trainer(6);
    let indices: Vec<i64> = (0..16).collect();
    let aug = Augment {
        crop_padding: 4,
        flip: Flip::Random,
        ..Augment::default()
    };
    let plain = plain_batch(&data, &indices);
    let batch = |seed| data.batch(&indices, [16, 16], Some((&aug, &draw(seed, 1)))).unwrap().0;
    let (a, b, c) = (batch(42), batch(42), batch(43));
    assert_eq!(a.size(), plain.size());
    assert!(a.equal(&b), "one seed, one augmentation");
    assert!(!a.equal(&c), "another seed, another augmentation");
    assert!(!a.equal(&plain), "augmented images differ from the originals");
    for k in 0..16 {
        assert!(
            is_shifted_crop(&data, &data.images.get(k), &a.get(k), 4, false),
            "augmented image {k} is no shifted or mirrored crop of its zero-padded original"
        );
    }
    // Padding is zero pixels, normalized to -1 with mean 0.5 and std 0.5: a shifted crop shows some.
    let min = a.min().double_value(&[]);
    assert!((min + 1.0).abs() < 1e-6, "padding normalizes to -1, got min {min}");

    // Reflect padding never shows a pixel that is not in the image.
    let reflect = Augment {
        crop_padding: 2,
        pad_mode: PadMode::Reflect,
        ..Augment::default()
    };
    let r = data.batch(&indices, [16, 16], Some((&reflect, &draw(5, 1)))).unwrap().0;
    for k in 0..16 {
        assert!(
            is_shifted_crop(&data, &data.images.get(k), &r.get(k), 2, true),
            "reflect crop {k}"
        );
    }
}

#[test]
fn random_erasing_zeroes_one_box_per_erased_image() {
    let _serial = common::serial();
    let (_, data) = trainer(6);
    let indices: Vec<i64> = (0..16).collect();
    // Every image, a square of a fifth of the area: round(sqrt(0.2 · 16 · 16)) = 7 pixels a side.
    let square = RandomErasing {
        probability: 1.0,
        scale: [0.2, 0.2],
        ratio: [1.0, 1.0],
    };
    let aug = Augment {
        random_erasing: Some(square),
        ..Augment::default()
    };
    let plain = plain_batch(&data, &indices);
    let erased = data.batch(&indices, [16, 16], Some((&aug, &draw(3, 1)))).unwrap().0;
    let again = data.batch(&indices, [16, 16], Some((&aug, &draw(3, 1)))).unwrap().0;
    assert!(erased.equal(&again), "one seed, one erasing");
    for k in 0..16 {
        // Pixels normalized with mean 0.5 are never exactly 0 (127.5 is no byte): the zeros are the box.
        let zero = erased.get(k).eq(0.0).all_dim(0, false).to_kind(Kind::Int64);
        assert_eq!(zero.sum(Kind::Int64).int64_value(&[]), 49, "image {k}: one 7×7 box");
        let rows = zero
            .sum_dim_intlist(&[1i64][..], false, Kind::Int64)
            .gt(0)
            .sum(Kind::Int64)
            .int64_value(&[]);
        assert_eq!(rows, 7, "image {k}: the box spans 7 rows");
        let kept = erased.get(k).ne(0.0).to_kind(Kind::Float);
        assert!(
            erased.get(k).eq_tensor(&(plain.get(k) * &kept)).all().int64_value(&[]) == 1,
            "image {k}: the rest untouched"
        );
    }
    // Probability 0 leaves the batch as it is.
    let never = Augment {
        random_erasing: Some(RandomErasing {
            probability: 0.0,
            ..square
        }),
        ..Augment::default()
    };
    assert!(data
        .batch(&indices, [16, 16], Some((&never, &draw(3, 1))))
        .unwrap()
        .0
        .equal(&plain));
}

#[test]
fn alternating_flip_inverts_every_other_epoch() {
    let _serial = common::serial();
    let (_, data) = trainer(7);
    let indices: Vec<i64> = (0..16).collect();
    let aug = Augment {
        flip: Flip::Alternating,
        ..Augment::default()
    };
    let plain = plain_batch(&data, &indices);
    let at = |epoch, seed| {
        data.batch(&indices, [16, 16], Some((&aug, &draw(seed, epoch))))
            .unwrap()
            .0
    };
    let (e1, e2, e3) = (at(1, 1), at(2, 2), at(3, 99));
    let mut flipped_first = 0;
    for k in 0..16 {
        let mirrored = plain.get(k).flip([2]);
        let one_flipped = e1.get(k).equal(&mirrored);
        assert!(one_flipped || e1.get(k).equal(&plain.get(k)));
        // The next epoch shows the other orientation; two epochs on, the same one, whatever the batch seed.
        assert_eq!(e2.get(k).equal(&mirrored), !one_flipped, "image {k}");
        assert!(e3.get(k).equal(&e1.get(k)), "image {k}");
        flipped_first += one_flipped as usize;
    }
    assert!(flipped_first > 2 && flipped_first < 14, "{flipped_first} of 16 flipped");
}

#[test]
fn label_smoothing_sums_and_parameter_groups_change_the_update() {
    let _serial = common::serial();
    let make = |groups: Vec<ParamGroup>, loss: LossConfig| {
        runtime::seed(11);
        let net = Network::new(ModelSpec::reference([3, 16, 16], 4), Device::Cpu).unwrap();
        let sgd = OptimizerConfig::Sgd {
            lr: Some(0.01),
            momentum: Some(0.9),
            dampening: None,
            nesterov: Some(true),
            weight_decay: Some(0.01),
            decoupled_weight_decay: Some(true),
        };
        Trainer::with_groups(net, sgd, groups, loss).unwrap()
    };
    let (_, data) = trainer(8);
    let batch: Vec<i64> = (0..32).collect();
    let mut base = make(vec![], LossConfig::default());
    let frozen_bias = ParamGroup {
        field: Some("bias".into()),
        lr_scale: Some(0.0),
        weight_decay: Some(0.0),
        ..ParamGroup::default()
    };
    let mut grouped = make(vec![frozen_bias], LossConfig::default());
    let bias_before = grouped.net.params[1].tensor.copy();
    let summed = LossConfig {
        label_smoothing: 0.2,
        reduction: Reduction::Sum,
        ..LossConfig::default()
    };
    let mut smooth = make(vec![], summed);
    for t in [&mut base, &mut grouped, &mut smooth] {
        t.step_indices(&data, &batch, None).unwrap();
    }
    // lrScale 0 and no decay: the biases stay; the weights move as in the plain run.
    assert!(grouped.net.params[1].tensor.equal(&bias_before));
    assert!(grouped.net.params[0].tensor.equal(&base.net.params[0].tensor));
    assert!(!base.net.params[1].tensor.equal(&bias_before));
    // A summed, smoothed loss makes a different (larger) step.
    let moved = |t: &Trainer| {
        (&t.net.params[0].tensor - &base.net.params[0].tensor)
            .abs()
            .sum(tch::Kind::Double)
            .double_value(&[])
    };
    assert!(moved(&smooth) > 0.0);
    assert!(Trainer::with_groups(
        Network::new(ModelSpec::reference([3, 16, 16], 4), Device::Cpu).unwrap(),
        OptimizerConfig::default(),
        vec![ParamGroup::default()],
        LossConfig::default()
    )
    .is_err());
}

#[test]
fn lookahead_pulls_weights_back_and_ema_follows_them() {
    let _serial = common::serial();
    let (_, data) = trainer(9);
    let batch: Vec<i64> = (0..32).collect();
    let fresh = || {
        runtime::seed(12);
        Trainer::new(
            Network::new(ModelSpec::reference([3, 16, 16], 4), Device::Cpu).unwrap(),
            OptimizerConfig::default(),
        )
        .unwrap()
    };
    let (mut plain, mut look, mut ema) = (fresh(), fresh(), fresh());
    let config = |mode| AveragingConfig {
        mode,
        decay: 0.5,
        every: 2,
        warmup: DecayWarmup::None,
        total_steps: 0,
    };
    look.set_averaging(Some(config(AveragingMode::Lookahead))).unwrap();
    ema.set_averaging(Some(config(AveragingMode::Ema))).unwrap();
    let start = plain.net.params[0].tensor.copy();
    for t in [&mut plain, &mut look, &mut ema] {
        t.step_indices(&data, &batch, None).unwrap();
    }
    // After one step (not a multiple of 2) nothing is averaged yet.
    assert!(look.net.params[0].tensor.equal(&plain.net.params[0].tensor));
    for t in [&mut plain, &mut look, &mut ema] {
        t.step_indices(&data, &batch, None).unwrap();
    }
    // Step 2: Lookahead sets the weights halfway between the start and where Adam went; EMA leaves them.
    let halfway = (&start + &plain.net.params[0].tensor) * 0.5;
    assert!(look.net.params[0].tensor.allclose(&halfway, 1e-6, 1e-7, false));
    assert!(ema.net.params[0].tensor.equal(&plain.net.params[0].tensor));
    let averager = ema.averager.as_mut().unwrap();
    assert!(averager.average[0].allclose(&halfway, 1e-6, 1e-7, false));
    // Swapping puts the average in for evaluation and back.
    averager.swap(&mut ema.net).unwrap();
    assert!(ema.net.params[0].tensor.allclose(&halfway, 1e-6, 1e-7, false));
    ema.averager.as_mut().unwrap().swap(&mut ema.net).unwrap();
    assert!(ema.net.params[0].tensor.equal(&plain.net.params[0].tensor));
}

#[test]
fn frozen_layers_keep_their_weights_and_statistics() {
    let _serial = common::serial();
    let json = r#"{"inputShape":[3,16,16],"layers":[
        {"type":"conv2d","outChannels":8,"kernelSize":3,"padding":1},{"type":"batchnorm2d"},{"type":"relu"},
        {"type":"adaptiveavgpool2d"},{"type":"flatten"},{"type":"linear","outFeatures":4}]}"#;
    runtime::seed(13);
    let net = Network::new(ModelSpec::from_json(json).unwrap(), Device::Cpu).unwrap();
    let mut t = Trainer::new(net, OptimizerConfig::default()).unwrap();
    let (_, data) = trainer(10);
    let changed = t.net.set_trainable(|name| !name.starts_with("fc1."), false).unwrap();
    assert_eq!(changed, 4);
    let conv = t.net.params[0].tensor.copy();
    let stats = t.net.buffers[0].tensor.copy();
    let head = t.net.params[4].tensor.copy();
    t.step_indices(&data, &(0..32).collect::<Vec<_>>(), None).unwrap();
    assert!(t.net.params[0].tensor.equal(&conv), "a frozen conv does not move");
    assert!(
        t.net.buffers[0].tensor.equal(&stats),
        "a frozen batch norm keeps its running mean"
    );
    assert!(!t.net.params[4].tensor.equal(&head), "the head trains");
    assert_eq!(t.net.trainable_param_count(), 4 * 8 + 4);
    t.net.set_trainable(|_| true, true).unwrap();
    t.step_indices(&data, &(0..32).collect::<Vec<_>>(), None).unwrap();
    assert!(
        !t.net.buffers[0].tensor.equal(&stats),
        "unfrozen, it follows the batches again"
    );
}

#[test]
fn test_time_augmentation_averages_views() {
    let _serial = common::serial();
    let (t, data) = trainer(14);
    let x = plain_batch(&data, &[0, 1, 2, 3]);
    let plain = convkit_core::evaluate::logits_with(&t.net, &x, Tta::None).unwrap();
    let mirror = convkit_core::evaluate::logits_with(&t.net, &x, Tta::Mirror).unwrap();
    let expected = (&plain + t.net.forward_t(&x.flip([3]), false).unwrap()) * 0.5;
    assert!(mirror.allclose(&expected, 1e-6, 1e-6, false));
    let translate = convkit_core::evaluate::logits_with(&t.net, &x, Tta::MirrorTranslate).unwrap();
    assert!(!translate.allclose(&mirror, 1e-6, 1e-6, false));
    assert_eq!(Tta::parse("mirrorTranslate").unwrap(), Tta::MirrorTranslate);
    assert!(Tta::parse("sideways").is_err());
}

#[test]
fn whitening_decorrelates_the_first_layers_patches() {
    let _serial = common::serial();
    let json = r#"{"inputShape":[3,16,16],"layers":[
        {"type":"conv2d","outChannels":24,"kernelSize":2,"name":"whiten"},{"type":"gelu"},
        {"type":"adaptiveavgpool2d"},{"type":"flatten"},{"type":"linear","outFeatures":4}]}"#;
    let mut net = Network::new(ModelSpec::from_json(json).unwrap(), Device::Cpu).unwrap();
    let (_, data) = trainer(15);
    let all: Vec<i64> = (0..data.len()).collect();
    let eigen = convkit_core::whitening::init_whitening(&mut net, &data, &all, "whiten", 5e-4).unwrap();
    assert_eq!(eigen.len(), 12);
    assert!(eigen.windows(2).all(|w| w[0] >= w[1]), "largest first: {eigen:?}");
    // The first 12 filters map the patches to coordinates whose second moment is λ/(λ+ε): about the identity for
    // every direction with λ ≫ ε; the other 12 are their negations.
    let (x, _) = data.batch(&all, [16, 16], None).unwrap();
    let w = &net.params[0].tensor;
    let y = x.conv2d(&w.narrow(0, 0, 12), None::<Tensor>, [1, 1], [0, 0], [1, 1], 1);
    let flat = y.permute([0, 2, 3, 1]).reshape([-1, 12]).to_kind(tch::Kind::Double);
    let moment = flat.transpose(0, 1).matmul(&flat) / flat.size()[0] as f64;
    for (i, &l) in eigen.iter().enumerate() {
        let expected = l / (l + 5e-4);
        let got = moment.double_value(&[i as i64, i as i64]);
        assert!((got - expected).abs() < 1e-4, "direction {i}: {got} vs {expected}");
        for j in 0..12 {
            if j != i {
                assert!(
                    moment.double_value(&[i as i64, j as i64]).abs() < 1e-4,
                    "({i}, {j}) not decorrelated"
                );
            }
        }
    }
    assert!(w.narrow(0, 12, 12).equal(&-w.narrow(0, 0, 12)));
    assert!(
        net.params[1].tensor.abs().sum(tch::Kind::Double).double_value(&[]) == 0.0,
        "bias zeroed"
    );
}

#[test]
fn gradient_clipping_scales_the_update_to_the_global_norm_as_pytorch_does() {
    let _serial = common::serial();
    // Plain SGD at rate 1: an update is minus the gradient, so the clipped update must be the unclipped one times
    // max_norm / (its norm + 1e-6).
    let sgd = OptimizerConfig::Sgd {
        lr: Some(1.0),
        momentum: Some(0.0),
        dampening: None,
        nesterov: Some(false),
        weight_decay: Some(0.0),
        decoupled_weight_decay: None,
    };
    let run = |clip: Option<f64>| -> Vec<Tensor> {
        let (t, data) = trainer(3);
        let mut t = Trainer::new(t.net, sgd.clone()).unwrap();
        t.set_grad_clip_norm(clip).unwrap();
        let before: Vec<Tensor> = t.net.params.iter().map(|p| p.tensor.copy()).collect();
        let all: Vec<i64> = (0..data.len()).collect();
        t.step_indices(&data, &all, None).unwrap();
        t.net.params.iter().zip(before).map(|(p, b)| &p.tensor - b).collect()
    };
    let free = run(None);
    let norm = Tensor::stack(&free.iter().map(|d| d.norm()).collect::<Vec<_>>(), 0)
        .norm()
        .double_value(&[]);
    assert!(norm > 0.1, "unclipped update norm {norm}");
    let max_norm = norm / 4.0;
    let clipped = run(Some(max_norm));
    let coef = max_norm / (norm + 1e-6);
    for (c, f) in clipped.iter().zip(&free) {
        let expected = f * coef;
        let diff = (c - &expected).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "clipped update differs by {diff}");
    }
    // A bound above the norm leaves the update as it was.
    for (c, f) in run(Some(norm * 2.0)).iter().zip(&free) {
        assert!((c - f).abs().max().double_value(&[]) < 1e-7);
    }
    // Checked: a bound must be a positive number.
    let (mut t, _) = trainer(3);
    assert!(matches!(
        t.set_grad_clip_norm(Some(0.0)),
        Err(Error::InvalidOption { .. })
    ));
    assert!(matches!(
        t.set_grad_clip_norm(Some(f64::NAN)),
        Err(Error::InvalidOption { .. })
    ));
}
