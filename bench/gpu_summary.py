"""Reads the GPU check's logs and prints its verdict: CUDA detected, ConvKit's training and evaluation
images/s, ConvKit against PyTorch on the same device, and the best test top-1 of the seed-network run.
Exits 1 when CUDA was not used or the accuracy is below --min-top1.
"""
import argparse
import json
import os
import statistics


def lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip().startswith("{")]


def one(path):
    found = lines(path)
    return found[-1] if found else None


def epochs_summary(events):
    epochs = [e for e in events if e.get("event") == "epoch"]
    if not epochs:
        return None
    # The first epoch pays for kernel selection and allocator warm-up; later ones show the steady state.
    steady = epochs[1:] or epochs
    return {
        "epochs": len(epochs),
        "train_images_per_second": statistics.median(e["train_images_per_second"] for e in steady),
        "eval_images_per_second": statistics.median(e["eval_images_per_second"] for e in steady),
        "epoch_seconds": statistics.median(e["seconds"] for e in steady),
        "best_test_top1": max(e["test_top1"] for e in epochs),
        "test_top1_by_epoch": [round(e["test_top1"], 2) for e in epochs],
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--logs", required=True)
    p.add_argument("--min-top1", type=float, default=70.0)
    p.add_argument("--out")
    a = p.parse_args()
    convkit = lines(os.path.join(a.logs, "convkit.jsonl"))
    runtime = next((e for e in convkit if e.get("event") == "runtime"), {})
    fp32 = epochs_summary(convkit)
    bf16 = epochs_summary(lines(os.path.join(a.logs, "convkit-bf16.jsonl")))
    floor = one(os.path.join(a.logs, "pytorch.json"))
    floor_bf16 = one(os.path.join(a.logs, "pytorch-bf16.json"))
    seed = one(os.path.join(a.logs, "seed.json"))
    nccl = one(os.path.join(a.logs, "nccl.json"))
    airbench_path = os.path.join(a.logs, "airbench.json")
    airbench = json.load(open(airbench_path)) if os.path.exists(airbench_path) else None
    channels_last_path = os.path.join(a.logs, "airbench-channels-last.json")
    channels_last = json.load(open(channels_last_path)) if os.path.exists(channels_last_path) else None
    zoo_path = os.path.join(a.logs, "zoo-step.txt")
    zoo = [l.strip() for l in open(zoo_path) if "img/s" in l] if os.path.exists(zoo_path) else []
    best_floor = max(floor["train"].values()) if floor else None
    best_floor_bf16 = max(floor_bf16["train"].values()) if floor_bf16 else None
    result = {
        "cuda_detected": bool(runtime.get("cuda_available")),
        "device": runtime.get("device"),
        "gpu": (floor or {}).get("gpu"),
        "convkit_fp32": fp32,
        "convkit_bf16": bf16,
        "pytorch_floor_train_images_per_second": floor and floor["train"],
        "pytorch_floor_eval_images_per_second": floor and floor["eval"],
        "pytorch_floor_bf16_train_images_per_second": floor_bf16 and floor_bf16["train"],
        "seed_pipeline_images_per_second": seed and seed.get("images_per_second"),
        "convkit_over_floor_train": fp32 and best_floor and fp32["train_images_per_second"] / best_floor,
        "convkit_bf16_over_floor_bf16_train": bf16 and best_floor_bf16 and bf16["train_images_per_second"] / best_floor_bf16,
        "nccl_world_size_1": nccl.get("nccl") if nccl else "not run",
        "airbench94_preset": airbench or "not run",
        "airbench94_preset_channels_last": channels_last or "not run",
        "zoo_step": zoo or "not run",
        "convkit_over_seed_pipeline_train": fp32 and seed and seed.get("images_per_second") and fp32["train_images_per_second"] / seed["images_per_second"],
    }
    ok_cuda = result["cuda_detected"] and str(result["device"]).startswith("cuda")
    ok_top1 = bool(fp32) and fp32["best_test_top1"] >= a.min_top1
    result["pass"] = ok_cuda and ok_top1
    print(json.dumps(result, indent=2))
    print(f"CUDA detected: {'yes' if ok_cuda else 'NO'} ({result['device']}, {result['gpu']})")
    if fp32:
        print(f"ConvKit fp32: train {fp32['train_images_per_second']:.0f} img/s, eval {fp32['eval_images_per_second']:.0f} img/s, "
              f"best test top-1 {fp32['best_test_top1']:.2f} % in {fp32['epochs']} epochs (needs {a.min_top1} %): {'ok' if ok_top1 else 'SHORT'}")
    print(f"NCCL start-up (world size 1, ConvKit's c10d bridge): {result['nccl_world_size_1']}")
    if airbench and airbench.get("timeRatio"):
        print(f"airbench94 preset / airbench94's own code, timed total: {airbench['timeRatio']:.2f}x (goal <= 1.1x); "
              f"accuracy difference {airbench['pointsAhead']:+.2f} points")
    if airbench and channels_last:
        # Seed 0 in both: the memory order is the only difference (it decides ConvKit's CUDA default).
        def convkit_seed0(run):
            return next((r for r in run["rows"] if r["who"].startswith("ConvKit") and r["seed"] == 0), None)
        nchw, nhwc = convkit_seed0(airbench), convkit_seed0(channels_last)
        if nchw and nhwc:
            print(f"airbench94 preset, seed 0, timed total: contiguous {nchw['timed']:.1f} s, channels_last "
                  f"{nhwc['timed']:.1f} s ({nhwc['timed'] / nchw['timed']:.2f}x); top-1 {nchw['top1']:.2f} / {nhwc['top1']:.2f} %")
    for line in zoo:
        print(f"zoo step: {line}")
    for name in ("convkit_over_floor_train", "convkit_bf16_over_floor_bf16_train", "convkit_over_seed_pipeline_train"):
        if result[name]:
            print(f"{name}: {result[name]:.2f}x")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2)
    raise SystemExit(0 if result["pass"] else 1)


if __name__ == "__main__":
    main()
