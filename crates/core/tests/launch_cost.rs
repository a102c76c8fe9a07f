//! A training step's launch cost, counted as top-level ATen operators (about one kernel launch each on a GPU):
//! the optimizer's update, zeroing the gradients and weight averaging cost a few operators whatever the number
//! of parameter tensors.

use convkit_core::averaging::{AveragingConfig, AveragingMode, DecayWarmup};
use convkit_core::op_count::count_ops;
use convkit_core::{runtime, ModelSpec, Network, OptimizerConfig, Trainer};
use tch::{Device, Kind, Tensor};

/// A network of `blocks` conv → batch norm → ReLU blocks (three parameter tensors each) and a linear head.
fn net(blocks: usize) -> Network {
    let mut layers: Vec<serde_json::Value> = Vec::new();
    for _ in 0..blocks {
        layers.push(serde_json::json!({ "type": "conv2d", "outChannels": 8, "kernelSize": 3, "padding": 1 }));
        layers.push(serde_json::json!({ "type": "batchnorm2d" }));
        layers.push(serde_json::json!({ "type": "relu" }));
    }
    layers.push(serde_json::json!({ "type": "flatten" }));
    layers.push(serde_json::json!({ "type": "linear", "outFeatures": 4 }));
    let spec = ModelSpec::from_value(serde_json::json!({ "inputShape": [3, 8, 8], "layers": layers })).unwrap();
    runtime::seed(1);
    Network::new(spec, Device::Cpu).unwrap()
}

/// Gives every parameter a gradient, as a backward pass does.
fn backward(t: &mut Trainer) {
    let x = Tensor::randn([4, 3, 8, 8], (Kind::Float, Device::Cpu));
    t.net.forward_t(&x, true).unwrap().sum(Kind::Float).backward();
}

/// Operators of the second optimizer step (the first one creates the state) and of the averaging after it.
fn update_ops(blocks: usize, optimizer: OptimizerConfig, averaging: Option<AveragingMode>) -> (u64, u64, usize) {
    let mut t = Trainer::new(net(blocks), optimizer).unwrap();
    if let Some(mode) = averaging {
        let config = AveragingConfig {
            mode,
            decay: 0.9,
            every: 1,
            warmup: DecayWarmup::None,
            total_steps: 0,
        };
        t.set_averaging(Some(config)).unwrap();
    }
    backward(&mut t);
    t.optimizer.step(&mut t.net.params).unwrap();
    backward(&mut t);
    let (stepped, step_ops) = count_ops(|| t.optimizer.step(&mut t.net.params)).unwrap();
    stepped.unwrap();
    let step = t.optimizer.step;
    let (averaged, average_ops) = count_ops(|| match &mut t.averager {
        Some(avg) => avg.after_step(&mut t.net, step),
        None => Ok(()),
    })
    .unwrap();
    averaged.unwrap();
    (step_ops, average_ops, t.net.params.len())
}

#[test]
fn an_update_is_a_few_operators_whatever_the_number_of_tensors() {
    let sgd = OptimizerConfig::Sgd {
        lr: Some(0.1),
        momentum: Some(0.9),
        dampening: None,
        nesterov: Some(true),
        weight_decay: Some(5e-4),
        decoupled_weight_decay: Some(true),
    };
    let adamw = OptimizerConfig::Adamw {
        lr: None,
        beta1: None,
        beta2: None,
        eps: None,
        weight_decay: None,
    };
    for (name, optimizer, averaging) in [
        (
            "SGD, Nesterov, decoupled decay, Lookahead",
            sgd,
            Some(AveragingMode::Lookahead),
        ),
        ("AdamW, EMA", adamw, Some(AveragingMode::Ema)),
    ] {
        let (small_step, small_average, small_tensors) = update_ops(1, optimizer.clone(), averaging);
        let (large_step, large_average, large_tensors) = update_ops(12, optimizer.clone(), averaging);
        eprintln!(
            "{name}: optimizer step {small_step} operators for {small_tensors} tensors, {large_step} for \
             {large_tensors}; averaging {small_average} and {large_average}"
        );
        assert!(large_tensors >= 30, "{large_tensors} tensors");
        // The fused kernel, the decoupled decay or the step counter, and zeroing the gradients.
        assert!(
            large_step <= 4,
            "{name}: {large_step} operators for {large_tensors} tensors"
        );
        assert_eq!(large_step, small_step, "{name}: the count grows with the tensors");
        assert!(large_average <= 2, "{name}: averaging took {large_average} operators");
        assert_eq!(large_average, small_average);
    }
}

#[test]
fn counting_sees_each_operator_once_and_nests() {
    let a = Tensor::ones([4], (Kind::Float, Device::Cpu));
    let (_, three) = count_ops(|| (&a + 1.0) * 2.0 - &a).unwrap();
    assert_eq!(three, 3);
    // Counting is per call and per thread; a second count starts from zero.
    let (_, one) = count_ops(|| a.sum(Kind::Float)).unwrap();
    assert_eq!(one, 1);
}
