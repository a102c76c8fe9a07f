//! The c10d bridge with two real processes on 127.0.0.1: each test runs this test binary once per rank (the
//! child finds its rank in the environment) and checks what the ranks report.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use convkit_core::checkpoint::{load_network, save_network};
use convkit_core::distributed::{Backend, DistConfig, GradSync, ProcessGroup};
use convkit_core::trainer::MicroBatch;
use convkit_core::{runtime, Dataset, ModelSpec, Network, Normalization, OptimizerConfig, Precision, Trainer};
use tch::{Device, Kind, Tensor};

const RANK: &str = "CONVKIT_C10D_TEST_RANK";
const PORT: &str = "CONVKIT_C10D_TEST_PORT";
const OUT: &str = "CONVKIT_C10D_TEST_OUT";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// This process's rank when it is a child of one of these tests.
fn child_rank() -> Option<i32> {
    std::env::var(RANK).ok().map(|r| r.parse().unwrap())
}

fn join(rank: i32) -> ProcessGroup {
    join_with_timeout(rank, Duration::from_secs(20))
}

fn join_with_timeout(rank: i32, timeout: Duration) -> ProcessGroup {
    tch::set_num_threads(1);
    ProcessGroup::init(&DistConfig {
        master_addr: "127.0.0.1".into(),
        master_port: std::env::var(PORT).unwrap().parse().unwrap(),
        rank,
        world_size: 2,
        backend: Backend::Gloo,
        timeout,
        store_timeout: Duration::from_secs(60),
        gloo_hostname: Some("127.0.0.1".into()),
    })
    .unwrap()
}

/// Runs `test` in two child processes (ranks 0 and 1) and returns their outputs, killing them after 60 s.
fn run_ranks(test: &str, out: Option<&std::path::Path>) -> Vec<(bool, String)> {
    let port = free_port().to_string();
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<Child> = (0..2)
        .map(|rank| {
            let mut cmd = Command::new(&exe);
            cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
                .env(RANK, rank.to_string())
                .env(PORT, &port)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if let Some(out) = out {
                cmd.env(OUT, out);
            }
            cmd.spawn().unwrap()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while children.iter_mut().any(|c| c.try_wait().unwrap().is_none()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    children
        .into_iter()
        .map(|mut c| {
            let _ = c.kill();
            let o = c.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            (o.status.success(), text)
        })
        .collect()
}

/// The shared quadrant images (tests/common) as a dataset.
fn quadrant_data() -> Dataset {
    let (pixels, labels) = common::quadrant_data();
    let norm = Normalization {
        mean: vec![0.5; 3],
        std: vec![0.5; 3],
    };
    Dataset::new(&pixels, &labels, [3, 16, 16], 4, norm, Device::Cpu).unwrap()
}

fn trainer(seed: u64) -> Trainer {
    runtime::seed(seed);
    let net = Network::new(ModelSpec::reference([3, 16, 16], 4), Device::Cpu).unwrap();
    Trainer::new(net, OptimizerConfig::default()).unwrap()
}

const STEPS: usize = 3;

#[test]
fn two_ranks_sum_broadcast_and_average_gradients_like_one_process() {
    let _serial = common::serial();
    if let Some(rank) = child_rank() {
        let group = Arc::new(join(rank));
        assert_eq!(
            group.allreduce_sum_f64(&[rank as f64 + 1.0, 10.0], "test").unwrap(),
            [3.0, 20.0]
        );
        let from_one = group.broadcast_f64(&[rank as f64 * 7.0 + 1.0], 1, "test").unwrap();
        assert_eq!(from_one, [8.0]);
        group.barrier(None).unwrap();
        // Different seeds, so the broadcast has something to fix.
        let mut t = trainer(100 + rank as u64);
        group.broadcast_network(&mut t.net, 0).unwrap();
        let checksum = |net: &Network| -> f64 {
            net.params
                .iter()
                .map(|p| p.tensor.sum(Kind::Double).double_value(&[]))
                .sum()
        };
        let mine = checksum(&t.net);
        assert_eq!(group.broadcast_f64(&[mine], 0, "test").unwrap(), [mine]);
        let mut t = trainer(7);
        t.grad_sync = Some(GradSync::new(Arc::clone(&group), 25 << 20));
        let data = quadrant_data();
        // DistributedSampler's interleaving: rank r takes every other image, starting at r.
        let mine: Vec<i64> = (rank as i64..64).step_by(2).collect();
        for step in 0..STEPS {
            // Rank 1 votes to stop at the last step; both ranks must hear it.
            t.grad_sync.as_mut().unwrap().vote_stop = rank == 1 && step == STEPS - 1;
            let out = t.step_indices(&data, &mine, None).unwrap();
            assert_eq!(out.stop_requested, step == STEPS - 1);
            assert!(out.allreduce_seconds > 0.0 && out.allreduce_seconds <= out.seconds);
        }
        finish_rank(rank, &t.net, &group);
        return;
    }
    let two = rank0_network("two_ranks_sum_broadcast_and_average_gradients_like_one_process");
    // One process, the same start, the whole batch of 64 per step.
    let mut single = trainer(7);
    let data = quadrant_data();
    let all: Vec<i64> = (0..64).collect();
    for _ in 0..STEPS {
        single.step_indices(&data, &all, None).unwrap();
    }
    assert_same_weights(&single.net, &two, "the two-rank weights");
    let moved = (&single.net.params[0].tensor - &trainer(7).net.params[0].tensor)
        .abs()
        .max()
        .double_value(&[]);
    assert!(moved > 1e-4, "the steps moved the weights ({moved})");
}

#[test]
fn accumulated_micro_batches_all_reduce_once_and_update_like_one_batch() {
    let _serial = common::serial();
    if let Some(rank) = child_rank() {
        let group = Arc::new(join(rank));
        let mut t = trainer(7);
        t.grad_sync = Some(GradSync::new(Arc::clone(&group), 25 << 20));
        let data = quadrant_data();
        let mine: Vec<i64> = (rank as i64..64).step_by(2).collect();
        // Two micro-batches of 16 per rank: the first keeps its gradients, the second all-reduces and updates.
        t.micro_batch = MicroBatch {
            loss_scale: 0.5,
            update: false,
        };
        let first = t.step_indices(&data, &mine[..16], None).unwrap();
        assert_eq!(first.allreduce_seconds, 0.0, "no all-reduce before the update");
        assert_eq!(t.optimizer.step, 0);
        t.micro_batch = MicroBatch {
            loss_scale: 0.5,
            update: true,
        };
        let second = t.step_indices(&data, &mine[16..], None).unwrap();
        assert!(second.allreduce_seconds > 0.0);
        assert_eq!(t.optimizer.step, 1);
        finish_rank(rank, &t.net, &group);
        return;
    }
    let two = rank0_network("accumulated_micro_batches_all_reduce_once_and_update_like_one_batch");
    // One process, one step on all 64 images.
    let mut single = trainer(7);
    let all: Vec<i64> = (0..64).collect();
    single.step_indices(&quadrant_data(), &all, None).unwrap();
    assert_same_weights(&single.net, &two, "the accumulated two-rank weights");
}

/// A rank's end in the tests that compare weights: rank 0 saves its network where the parent asked, then every rank
/// waits for the others.
fn finish_rank(rank: i32, net: &Network, group: &ProcessGroup) {
    if rank == 0 {
        let out = std::path::PathBuf::from(std::env::var(OUT).unwrap());
        save_network(net, &out, Default::default()).unwrap();
    }
    group.barrier(None).unwrap();
}

/// Runs `test` once per rank, checks that every rank passed, and returns the network rank 0 saved.
fn rank0_network(test: &str) -> Network {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rank0.safetensors");
    for (rank, (ok, text)) in run_ranks(test, Some(&out)).iter().enumerate() {
        assert!(ok, "rank {rank} failed:\n{text}");
    }
    load_network(&out, Device::Cpu).unwrap().0
}

/// Every parameter of `two` within 1e-5 of `single`'s.
fn assert_same_weights(single: &Network, two: &Network, what: &str) {
    for (p, q) in single.params.iter().zip(&two.params) {
        let diff = (&p.tensor - &q.tensor).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{}: {what} differ by {diff}", p.name);
    }
}

/// A small network with a learning batch norm and one without affine parameters, trained with SGD (whose update is
/// linear in the gradient, so two ranks' sums match one process's up to float rounding).
fn batchnorm_trainer(seed: u64) -> Trainer {
    runtime::seed(seed);
    let spec = ModelSpec::from_json(
        r#"{"inputShape":[3,16,16],"layers":[
            {"type":"conv2d","outChannels":8,"kernelSize":3,"padding":1,"bias":false},{"type":"batchnorm2d"},{"type":"relu"},
            {"type":"conv2d","outChannels":8,"kernelSize":3,"stride":2,"padding":1},{"type":"batchnorm2d","affine":false},
            {"type":"relu"},{"type":"adaptiveavgpool2d"},{"type":"flatten"},{"type":"linear","outFeatures":4}]}"#,
    )
    .unwrap();
    let net = Network::new(spec, Device::Cpu).unwrap();
    let sgd = OptimizerConfig::Sgd {
        lr: Some(0.1),
        momentum: Some(0.9),
        dampening: None,
        nesterov: None,
        weight_decay: None,
        decoupled_weight_decay: None,
    };
    Trainer::new(net, sgd).unwrap()
}

#[test]
fn synchronized_batch_norm_on_two_ranks_trains_like_one_process_of_both_batches() {
    let _serial = common::serial();
    if let Some(rank) = child_rank() {
        let group = Arc::new(join(rank));
        let data = quadrant_data();
        let mine: Vec<i64> = (rank as i64..64).step_by(2).collect();
        let dir = std::path::PathBuf::from(std::env::var(OUT).unwrap());
        for sync in [true, false] {
            let mut t = batchnorm_trainer(11);
            t.grad_sync = Some(GradSync::new(Arc::clone(&group), 25 << 20));
            t.net.sync_batchnorm = sync.then(|| Arc::clone(&group));
            for _ in 0..STEPS {
                t.step_indices(&data, &mine, None).unwrap();
            }
            if rank == 0 {
                save_network(
                    &t.net,
                    &dir.join(format!("sync-{sync}.safetensors")),
                    Default::default(),
                )
                .unwrap();
            }
        }
        // Under bf16 the activations reach the batch norms as bfloat16: statistics and gradients stay float32.
        let mut t = batchnorm_trainer(11);
        t.net.precision = Precision::Bf16;
        t.grad_sync = Some(GradSync::new(Arc::clone(&group), 25 << 20));
        t.net.sync_batchnorm = Some(Arc::clone(&group));
        let losses: Vec<f64> = (0..STEPS)
            .map(|_| t.step_indices(&data, &mine, None).unwrap().loss)
            .collect();
        assert!(losses.iter().all(|l| l.is_finite()), "bf16 losses {losses:?}");
        group.barrier(None).unwrap();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ranks = run_ranks(
        "synchronized_batch_norm_on_two_ranks_trains_like_one_process_of_both_batches",
        Some(dir.path()),
    );
    for (rank, (ok, text)) in ranks.iter().enumerate() {
        assert!(ok, "rank {rank} failed:\n{text}");
    }
    let mut single = batchnorm_trainer(11);
    let data = quadrant_data();
    let all: Vec<i64> = (0..64).collect();
    for _ in 0..STEPS {
        single.step_indices(&data, &all, None).unwrap();
    }
    let worst = |net: &Network| -> (f64, f64) {
        let params = single
            .net
            .params
            .iter()
            .zip(&net.params)
            .map(|(p, q)| (&p.tensor - &q.tensor).abs().max().double_value(&[]))
            .fold(0.0, f64::max);
        // Running means and variances (num_batches_tracked is an integer count, the same in all runs).
        let stats = single
            .net
            .buffers
            .iter()
            .zip(&net.buffers)
            .filter(|(b, _)| b.tensor.kind() == Kind::Float)
            .map(|(b, c)| (&b.tensor - &c.tensor).abs().max().double_value(&[]))
            .fold(0.0, f64::max);
        (params, stats)
    };
    let (synced, _) = load_network(&dir.path().join("sync-true.safetensors"), Device::Cpu).unwrap();
    let (params, stats) = worst(&synced);
    assert!(params < 1e-5, "synchronized: the weights differ by {params}");
    assert!(stats < 1e-5, "synchronized: the running statistics differ by {stats}");
    // Per-rank statistics (DDP's default) see half the batch each: visibly different from one process's.
    let (local, _) = load_network(&dir.path().join("sync-false.safetensors"), Device::Cpu).unwrap();
    let (params, stats) = worst(&local);
    assert!(
        params > 1e-4 && stats > 1e-4,
        "per-rank batch norm differs by only {params} (weights), {stats} (statistics)"
    );
}

#[test]
fn a_peer_killed_mid_run_is_an_error_naming_both_ranks() {
    let _serial = common::serial();
    if let Some(rank) = child_rank() {
        let group = join(rank);
        group.barrier(None).unwrap();
        if rank == 1 {
            // SAFETY: ends this child process at once, as `kill -9` would.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        let started = Instant::now();
        let mut t = Tensor::ones([1 << 20], (Kind::Float, Device::Cpu));
        let err = group
            .allreduce_sum(std::slice::from_mut(&mut t), "all-reduce of the test")
            .unwrap_err();
        let message = err.to_string();
        assert_eq!(err.code(), "DISTRIBUTED_ERROR");
        assert!(
            message.starts_with("rank 0 of 2: all-reduce of the test failed (lost rank 1"),
            "{message}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "took {:?}",
            started.elapsed()
        );
        println!("survivor: {message}");
        return;
    }
    let ranks = run_ranks("a_peer_killed_mid_run_is_an_error_naming_both_ranks", None);
    let (ok, text) = &ranks[0];
    assert!(ok, "rank 0 did not report the lost peer:\n{text}");
    assert!(text.contains("survivor: rank 0 of 2"), "{text}");
    assert!(!ranks[1].0, "rank 1 was killed");
}

#[test]
fn a_barrier_given_a_longer_timeout_outlasts_the_group_timeout() {
    let _serial = common::serial();
    if let Some(rank) = child_rank() {
        // Collectives give up after 1 s here; the barrier is told to wait 30 s, and rank 1 comes 3 s late.
        let group = join_with_timeout(rank, Duration::from_secs(1));
        if rank == 1 {
            std::thread::sleep(Duration::from_secs(3));
        }
        group.barrier(Some(Duration::from_secs(30))).unwrap();
        // A plain collective still has the short timeout: rank 1 comes late again, and rank 0 gives up.
        if rank == 1 {
            std::thread::sleep(Duration::from_secs(3));
            return;
        }
        let err = group.barrier(None).unwrap_err().to_string();
        assert!(err.starts_with("rank 0 of 2: barrier failed (lost rank 1"), "{err}");
        println!("late: {err}");
        return;
    }
    let ranks = run_ranks("a_barrier_given_a_longer_timeout_outlasts_the_group_timeout", None);
    for (rank, (ok, text)) in ranks.iter().enumerate() {
        assert!(ok, "rank {rank} failed:\n{text}");
    }
    assert!(
        ranks[0].1.contains("late: rank 0 of 2: barrier failed"),
        "{}",
        ranks[0].1
    );
}

#[test]
fn a_missing_rank_is_a_rendezvous_error_naming_the_address() {
    let _serial = common::serial();
    let port = free_port();
    let err = ProcessGroup::init(&DistConfig {
        master_addr: "127.0.0.1".into(),
        master_port: port,
        rank: 0,
        world_size: 2,
        backend: Backend::Gloo,
        timeout: Duration::from_secs(5),
        store_timeout: Duration::from_secs(1),
        gloo_hostname: None,
    })
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("rank 0 of 2: rendezvous of 2 ranks at 127.0.0.1:{port}")),
        "{message}"
    );
}
