//! Criterion benchmarks of the backup hot path: each stage alone, then the
//! whole backup (in-memory source to a null store) and the whole restore.
//!
//! ```text
//! cargo bench -p shipshape-benches
//! ```

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use backup_core::{
    BackupOptions, Identities, MemoryStore, PipelineOptions, Recipients, Repository,
    RestoreOptions, RestoreTarget, Source, keys, stages,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use shipshape_benches::{NullStore, mixed};

const SIZE: u64 = 32 << 20;

fn keypair() -> (Recipients, Identities) {
    let key = keys::generate();
    (
        Recipients::x25519([key.to_public()]),
        Identities::from_key(key),
    )
}

fn stage_benches(c: &mut Criterion) {
    let data = mixed(SIZE);
    let opts = PipelineOptions::default();
    let (recipients, identities) = keypair();
    let compressed = stages::compress(&data, &opts).expect("compress");
    let sealed = stages::encrypt(&compressed, &recipients).expect("encrypt");

    let tree = tempfile::tempdir().expect("tempdir");
    for (i, chunk) in data.chunks(6000).take(3000).enumerate() {
        let dir = tree.path().join(format!("d{}", i % 40));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(format!("f{i}")), chunk).expect("write");
    }
    let tree_bytes = stages::read_source(tree.path()).expect("read");

    let mut g = c.benchmark_group("stage");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Bytes(tree_bytes));
    g.bench_function("read 3000 files as tar", |b| {
        b.iter(|| stages::read_source(black_box(tree.path())).expect("read"))
    });
    g.throughput(Throughput::Bytes(SIZE));
    g.bench_function("zstd -3 frames, all cores", |b| {
        b.iter(|| stages::compress(black_box(&data), &opts).expect("compress"))
    });
    g.bench_function("zstd -3 frames, one core", |b| {
        let one = PipelineOptions {
            workers: 1,
            ..opts.clone()
        };
        b.iter(|| stages::compress(black_box(&data), &one).expect("compress"))
    });
    g.throughput(Throughput::Bytes(compressed.len() as u64));
    g.bench_function("age encrypt", |b| {
        b.iter(|| stages::encrypt(black_box(&compressed), &recipients).expect("encrypt"))
    });
    g.bench_function("age decrypt", |b| {
        b.iter(|| stages::decrypt(black_box(&sealed), &identities).expect("decrypt"))
    });
    g.throughput(Throughput::Bytes(SIZE));
    g.bench_function("zstd decompress", |b| {
        b.iter(|| stages::decompress(black_box(&compressed)).expect("decompress"))
    });
    g.finish();
}

fn pipeline_benches(c: &mut Criterion) {
    let data = Arc::new(mixed(SIZE));
    let (recipients, identities) = keypair();
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Bytes(SIZE));

    let null = Repository::new(Arc::new(NullStore));
    let opts = BackupOptions::new(recipients.clone());
    g.bench_function("backup memory -> null store", |b| {
        b.iter_batched(
            || Source::reader("bench", std::io::Cursor::new(data.to_vec())),
            |source| rt.block_on(null.backup(source, &opts)).expect("backup"),
            BatchSize::PerIteration,
        )
    });

    let memory = Repository::new(Arc::new(MemoryStore::new()));
    let source = Source::reader("bench", std::io::Cursor::new(data.to_vec()));
    let manifest = rt.block_on(memory.backup(source, &opts)).expect("backup");
    g.bench_function("restore memory store -> sink", |b| {
        b.iter(|| {
            let target = RestoreTarget::Writer(Box::new(std::io::sink()));
            rt.block_on(memory.restore(&manifest, &identities, target, &RestoreOptions::default()))
                .expect("restore")
        })
    });
    g.finish();
}

criterion_group!(benches, stage_benches, pipeline_benches);
criterion_main!(benches);
