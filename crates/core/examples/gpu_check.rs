//! The GPU check's ConvKit half (scripts/gpu-check.sh): the machines it runs on have a GPU and PyTorch but
//! no Node, so this drives the same core the addon drives (resident uint8 datasets, the training step,
//! evaluation) from Rust. It trains the reference network for some epochs on decoded images, evaluates the
//! training and test data after each, and prints one JSON object per line.
//!
//! cargo run --release --example gpu_check -- --data <dir> [--epochs 10] [--device auto] [--precision fp32]
//! where <dir> holds train.u8, train.labels, test.u8, test.labels (uint8 N×3×32×32, int32 labels), as
//! bench/decode_images.py writes them.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use convkit_core::{
    runtime, Classifier, Dataset, EvalCounts, ModelOptions, ModelSpec, Normalization, StepOptions, Tta,
};
use serde_json::json;

const SHAPE: [i64; 3] = [3, 32, 32];
const CLASSES: i64 = 10;

struct Args {
    data: PathBuf,
    epochs: usize,
    device: String,
    precision: String,
    batch: usize,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        data: PathBuf::new(),
        epochs: 10,
        device: "auto".into(),
        precision: "fp32".into(),
        batch: 128,
        seed: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag}: expected a value"));
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: expected an integer, got {v}"))
        };
        match flag.as_str() {
            "--data" => args.data = PathBuf::from(value()?),
            "--epochs" => args.epochs = number(value()?)? as usize,
            "--device" => args.device = value()?,
            "--precision" => args.precision = value()?,
            "--batch" => args.batch = number(value()?)? as usize,
            "--seed" => args.seed = number(value()?)?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if args.data.as_os_str().is_empty() {
        return Err("--data <dir> is required".into());
    }
    Ok(args)
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// One split as a resident dataset, normalized as the seed does (mean 0.5, std 0.5).
fn dataset(dir: &Path, split: &str, device: tch::Device) -> Result<Dataset, String> {
    let pixels = read(&dir.join(format!("{split}.u8")))?;
    let labels: Vec<i64> = read(&dir.join(format!("{split}.labels")))?
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
        .collect();
    let norm = Normalization {
        mean: vec![0.5; 3],
        std: vec![0.5; 3],
    };
    Dataset::new(&pixels, &labels, SHAPE, CLASSES, norm, device).map_err(|e| format!("{split}: {e}"))
}

/// A seeded Fisher–Yates shuffle, so every run visits the batches in the same order.
fn shuffled(n: usize, seed: u64) -> Vec<i64> {
    let mut state = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut order: Vec<i64> = (0..n as i64).collect();
    for i in (1..n).rev() {
        order.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    order
}

fn top1(c: &EvalCounts) -> f64 {
    100.0 * c.top1_correct as f64 / c.count as f64
}

fn run(args: Args) -> Result<(), String> {
    let cuda = runtime::init();
    let device = runtime::parse_device(&args.device).map_err(|e| e.to_string())?;
    println!(
        "{}",
        json!({
            "event": "runtime",
            "cuda_available": runtime::cuda_available(),
            "cuda_devices": tch::Cuda::device_count(),
            "cudnn": tch::Cuda::cudnn_is_available(),
            "libtorch_cuda": cuda.loaded_from,
            "cuda_load_error": cuda.load_error,
            "device": runtime::device_name(device),
            "threads": runtime::threads(),
        })
    );
    let load = Instant::now();
    let train = dataset(&args.data, "train", device)?;
    let test = dataset(&args.data, "test", device)?;
    println!(
        "{}",
        json!({"event": "data", "train": train.len(), "test": test.len(), "seconds": load.elapsed().as_secs_f64()})
    );

    // The addon's own entry: channels_last and the rest default as they do for `Model.create`.
    let options = ModelOptions {
        device: args.device.clone(),
        seed: Some(args.seed as i64),
        precision: Some(args.precision.clone()),
        ..ModelOptions::default()
    };
    let mut model = Classifier::create(ModelSpec::reference(SHAPE, CLASSES), options).map_err(|e| e.to_string())?;
    let cancel = AtomicBool::new(false);
    let mut best = 0.0f64;
    for epoch in 1..=args.epochs {
        let order = shuffled(
            train.len() as usize,
            args.seed.wrapping_mul(1000).wrapping_add(epoch as u64),
        );
        let start = Instant::now();
        let (mut loss_sum, mut seen) = (0.0, 0i64);
        for batch in order.chunks(args.batch) {
            let step = model
                .train_step(&train, batch, &StepOptions::default())
                .map_err(|e| e.to_string())?;
            loss_sum += step.loss * step.count as f64;
            seen += step.count;
        }
        let train_seconds = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let on_train = model
            .evaluate(&train, None, 500, Tta::None, false, &cancel)
            .map_err(|e| e.to_string())?;
        let on_test = model
            .evaluate(&test, None, 500, Tta::None, false, &cancel)
            .map_err(|e| e.to_string())?;
        let eval_seconds = start.elapsed().as_secs_f64();
        best = best.max(top1(&on_test));
        println!(
            "{}",
            json!({
                "event": "epoch",
                "epoch": epoch,
                "train_loss": loss_sum / seen as f64,
                "train_top1": top1(&on_train),
                "test_loss": on_test.loss_sum / on_test.count as f64,
                "test_top1": top1(&on_test),
                "train_images_per_second": seen as f64 / train_seconds,
                "eval_images_per_second": (on_train.count + on_test.count) as f64 / eval_seconds,
                "seconds": train_seconds + eval_seconds,
            })
        );
    }
    println!(
        "{}",
        json!({"event": "done", "best_test_top1": best, "precision": args.precision})
    );
    Ok(())
}

fn main() {
    if let Err(message) = parse_args().and_then(run) {
        eprintln!("gpu_check: {message}");
        std::process::exit(1);
    }
}
