//! Top-level ATen operators per training step (about one kernel launch each on a GPU) of a network spec, trained
//! as the airbench94 preset trains: Nesterov SGD with an L2 term, batch-norm biases in their own group, summed
//! label-smoothed loss, Lookahead every 5 steps, reflect-padded crops and alternating flips.
//!
//! cargo run --release -p convkit-core --example step_ops -- <spec.json> [batch] [fp32|bf16]
//! (the preset's spec: `npx tsx -e "import {airbench94Net} from './ts/index.ts';
//!  console.log(JSON.stringify(airbench94Net({classes: 10})))"`)

use convkit_core::augment::{Augment, Draw, Flip, PadMode};
use convkit_core::averaging::{AveragingConfig, AveragingMode, DecayWarmup};
use convkit_core::loss::{LossConfig, Reduction};
use convkit_core::op_count::count_ops;
use convkit_core::{
    runtime, Dataset, ModelSpec, Network, Normalization, OptimizerConfig, ParamGroup, Precision, Trainer,
};
use tch::Device;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let spec = ModelSpec::from_json(&std::fs::read_to_string(&args[1]).expect("a spec file")).expect("a valid spec");
    let batch: i64 = args.get(2).map_or(1024, |b| b.parse().expect("a batch size"));
    let precision = match args.get(3).map(String::as_str) {
        Some("bf16") => Precision::Bf16,
        _ => Precision::Fp32,
    };
    runtime::seed(0);
    let [c, h, w] = spec.input_shape;
    let classes = spec.classes().expect("a classifier");
    let mut net = Network::new(spec, Device::Cpu).expect("the network");
    net.precision = precision;
    let sgd = OptimizerConfig::Sgd {
        lr: Some(11.5 / 1024.0),
        momentum: Some(0.85),
        dampening: None,
        nesterov: Some(true),
        weight_decay: Some(0.0153 / 11.5),
        decoupled_weight_decay: None,
    };
    let biases = ParamGroup {
        layer: Some("batchnorm2d".into()),
        field: Some("bias".into()),
        lr_scale: Some(64.0),
        ..ParamGroup::default()
    };
    let loss = LossConfig {
        label_smoothing: 0.2,
        reduction: Reduction::Sum,
    };
    let mut t = Trainer::with_groups(net, sgd, vec![biases], loss).expect("the trainer");
    let lookahead = AveragingConfig {
        mode: AveragingMode::Lookahead,
        decay: 0.95f64.powi(5),
        every: 5,
        warmup: DecayWarmup::None,
        total_steps: 0,
    };
    t.set_averaging(Some(lookahead)).expect("averaging");
    let n = batch * 2;
    let pixels: Vec<u8> = (0..n * c * h * w).map(|i| (i * 2_654_435_761 % 251) as u8).collect();
    let labels: Vec<i64> = (0..n).map(|i| i % classes).collect();
    let norm = Normalization {
        mean: vec![0.5; c as usize],
        std: vec![0.25; c as usize],
    };
    let data = Dataset::new(&pixels, &labels, [c, h, w], classes, norm, Device::Cpu).expect("the dataset");
    let augment = Augment {
        crop_padding: 2,
        pad_mode: PadMode::Reflect,
        flip: Flip::Alternating,
        cutout: 0,
        resized_crop: None,
    };
    let indices: Vec<i64> = (0..batch).collect();
    let steps = 10;
    let mut counts = Vec::new();
    for step in 0..steps {
        let draw = Draw {
            batch_seed: step,
            run_seed: 1,
            epoch: 1,
        };
        let (out, ops) = count_ops(|| t.step_indices(&data, &indices, Some((&augment, &draw)))).expect("counting");
        out.expect("a step");
        counts.push(ops);
    }
    let tensors = t.net.params.len();
    println!(
        "{precision:?}, batch {batch}, {tensors} parameter tensors: top-level operators per step {counts:?} \
         (mean of steps 2-{steps}: {:.1})",
        counts[1..].iter().sum::<u64>() as f64 / (steps - 1) as f64
    );
}
