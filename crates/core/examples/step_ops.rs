//! Top-level ATen operators per training step (about one kernel launch each on a GPU) of a network spec, trained
//! as the airbench94 preset trains: Nesterov SGD with an L2 term, batch-norm biases in their own group, summed
//! label-smoothed loss, Lookahead every 5 steps, reflect-padded crops and alternating flips.
//!
//! cargo run --release -p convkit-core --example step_ops -- <spec.json> [batch] [fp32|bf16]
//! (the preset's spec: `npx tsx -e "import {airbench94Net} from './ts/index.ts';
//!  console.log(JSON.stringify(airbench94Net({classes: 10})))"`)

use convkit_core::op_count::count_ops;
use convkit_core::{
    AugmentOptions, AveragingOptions, Classifier, Dataset, ModelOptions, ModelSpec, Normalization, OptimizerConfig,
    ParamGroup, StepOptions,
};
use tch::Device;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let spec = ModelSpec::from_json(&std::fs::read_to_string(&args[1]).expect("a spec file")).expect("a valid spec");
    let batch: i64 = args.get(2).map_or(1024, |b| b.parse().expect("a batch size"));
    let precision = match args.get(3).map(String::as_str) {
        Some("bf16") => "bf16",
        _ => "fp32",
    };
    let [c, h, w] = spec.input_shape;
    let classes = spec.classes().expect("a classifier");
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
    let options = ModelOptions {
        device: "cpu".into(),
        optimizer: Some(sgd),
        param_groups: Some(vec![biases]),
        seed: Some(0),
        // Contiguous, as this count has always been taken (the CPU default is channels_last).
        channels_last: Some(false),
        precision: Some(precision.into()),
        label_smoothing: Some(0.2),
        loss_reduction: Some("sum".into()),
        dtype: None,
        class_weights: None,
    };
    let mut model = Classifier::create(spec, options).expect("the model");
    let lookahead = AveragingOptions {
        mode: "lookahead".into(),
        decay: 0.95f64.powi(5),
        every: Some(5),
        warmup: None,
        total_steps: None,
    };
    model.set_averaging(Some(&lookahead)).expect("averaging");
    let n = batch * 2;
    let pixels: Vec<u8> = (0..n * c * h * w).map(|i| (i * 2_654_435_761 % 251) as u8).collect();
    let labels: Vec<i64> = (0..n).map(|i| i % classes).collect();
    let norm = Normalization {
        mean: vec![0.5; c as usize],
        std: vec![0.25; c as usize],
    };
    let data = Dataset::new(&pixels, &labels, [c, h, w], classes, norm, Device::Cpu).expect("the dataset");
    let augment = AugmentOptions {
        crop_padding: Some(2),
        pad_mode: Some("reflect".into()),
        flip: Some("alternating".into()),
        ..Default::default()
    };
    let indices: Vec<i64> = (0..batch).collect();
    let steps = 10;
    let mut counts = Vec::new();
    for step in 0..steps {
        let options = StepOptions {
            augment: Some(augment.clone()),
            batch_seed: Some(step),
            run_seed: Some(1),
            epoch: Some(1),
            ..StepOptions::default()
        };
        let (out, ops) = count_ops(|| model.train_step(&data, &indices, &options)).expect("counting");
        out.expect("a step");
        counts.push(ops);
    }
    let tensors = model.network().params.len();
    println!(
        "{precision}, batch {batch}, {tensors} parameter tensors: top-level operators per step {counts:?} \
         (mean of steps 2-{steps}: {:.1})",
        counts[1..].iter().sum::<u64>() as f64 / (steps - 1) as f64
    );
}
