//! Criterion benchmarks of the Rust API, at both durabilities:
//! put, put_batch(100), reserve+ack of a pre-filled queue, and a full
//! put -> reserve -> ack cycle. `cargo bench --bench queue`.
//!
//! Each benchmark works on a fresh file in a temp directory. Numbers for
//! "full" are bound by the disk's fsync rate (see bench/ for the peer run).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use jobq::{Config, Durability, PutOptions, Queue};

const PAYLOAD: &[u8] = &[b'x'; 100];

fn open(durability: Durability) -> (tempfile::TempDir, Queue) {
    let dir = tempfile::tempdir().expect("temp dir");
    let q = Queue::open(dir.path().join("bench.db"), Config { durability, ..Config::default() }).expect("open");
    (dir, q)
}

fn name(d: Durability) -> &'static str {
    match d {
        Durability::Full => "full",
        Durability::Normal => "normal",
    }
}

fn benches(c: &mut Criterion) {
    let opts = PutOptions::default();
    for durability in [Durability::Normal, Durability::Full] {
        let mut g = c.benchmark_group("jobq");
        g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));

        let (_dir, q) = open(durability);
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("put", name(durability)), |b| {
            b.iter(|| q.put("bench", PAYLOAD, &opts).expect("put"))
        });

        let batch: Vec<&[u8]> = vec![PAYLOAD; 100];
        g.throughput(Throughput::Elements(100));
        g.bench_function(BenchmarkId::new("put_batch_100", name(durability)), |b| {
            b.iter(|| q.put_batch("bench-batch", &batch, &opts).expect("put_batch"))
        });

        // reserve+ack on a queue filled beforehand (outside the timing).
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("reserve_ack", name(durability)), |b| {
            b.iter_batched(
                || {
                    q.put_batch("bench-ra", &[PAYLOAD], &opts).expect("fill");
                },
                |()| {
                    let job = q.reserve("bench-ra", Some(Duration::ZERO)).expect("reserve").expect("a job");
                    job.ack().expect("ack");
                },
                BatchSize::SmallInput,
            )
        });

        g.bench_function(BenchmarkId::new("cycle", name(durability)), |b| {
            b.iter(|| {
                q.put("bench-cycle", PAYLOAD, &opts).expect("put");
                let job = q.reserve("bench-cycle", Some(Duration::ZERO)).expect("reserve").expect("a job");
                job.ack().expect("ack");
            })
        });
        g.finish();
        q.close().expect("close");
    }
}

criterion_group!(queue, benches);
criterion_main!(queue);
