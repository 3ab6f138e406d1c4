//! The S3 store against a real Garage server (scripts/test-services.sh
//! starts it): the conformance suite, byte-exact round trips around part
//! boundaries and beyond 2 GiB, and network faults injected by a proxy.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::Credentials;
use backup_core::store::{ByteStream, S3Location, S3Options, S3Store};
use backup_core::{Error, Repository, Source, Store, StoreExt};
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use test_support::proxy::{Fault, FaultProxy};
use test_support::services::{self, S3Server};

use crate::conformance::read_all;
use crate::support::{key_pair, options, runtime};

const MIB: usize = 1 << 20;

/// A unique prefix per store, so tests never see each other's objects.
fn fresh_prefix(tag: &str) -> String {
    format!("test/{tag}-{:016x}", rand::random::<u64>())
}

async fn store_at(server: &S3Server, endpoint: &str, prefix: &str, opts: S3Options) -> S3Store {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .credentials_provider(Credentials::new(
            &server.key_id,
            &server.secret,
            None,
            None,
            "shipshape-tests",
        ))
        .region(aws_config::Region::new(server.region.clone()))
        .endpoint_url(endpoint)
        .load()
        .await;
    let location: S3Location = format!("s3://{}/{prefix}", server.bucket)
        .parse()
        .expect("location");
    S3Store::from_sdk_config(&sdk, location, opts).expect("store")
}

/// A store that reaches the server through a fault-injecting proxy.
async fn behind_proxy(server: &S3Server, prefix: &str, opts: S3Options) -> (FaultProxy, S3Store) {
    let proxy = FaultProxy::start(server.addr).await;
    let endpoint = format!("http://{}", proxy.addr());
    let store = store_at(server, &endpoint, prefix, opts).await;
    (proxy, store)
}

fn small_parts() -> S3Options {
    S3Options {
        part_size: 5 * MIB,
        concurrency: 3,
        ..S3Options::default()
    }
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn stream_in_chunks(data: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<_> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks).boxed()
}

#[test]
fn s3_store_conforms() {
    let Some(server) = services::s3() else { return };
    let rt = runtime();
    crate::conformance::suite(|| {
        let prefix = fresh_prefix("conformance");
        let store = rt.block_on(store_at(&server, &server.endpoint, &prefix, small_parts()));
        Arc::new(store)
    });
}

#[test]
fn every_size_around_part_boundaries_round_trips() {
    let Some(server) = services::s3() else { return };
    let rt = runtime();
    rt.block_on(async {
        let store = store_at(
            &server,
            &server.endpoint,
            &fresh_prefix("sizes"),
            small_parts(),
        )
        .await;
        for (i, size) in [
            0,
            1,
            5 * MIB - 1,
            5 * MIB,
            5 * MIB + 1,
            10 * MIB,
            17 * MIB + 3,
        ]
        .into_iter()
        .enumerate()
        {
            let data = pattern(size, i as u64);
            let key = format!("data/{size}");
            let meta = store
                .put(&key, stream_in_chunks(&data, 700_001))
                .await
                .expect("put");
            assert_eq!(meta.size, size as u64);
            assert_eq!(store.head(&key).await.expect("head").size, size as u64);
            assert!(read_all(&store, &key).await == data, "size {size} differs");
        }
        assert!(store.incomplete("").await.expect("incomplete").is_empty());
    });
}

/// An incompressible source of `len` bytes that hashes what it produces.
struct Noise {
    left: u64,
    x: u64,
    hash: Arc<std::sync::Mutex<Sha256>>,
}

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX))
            & !7;
        let n = if n == 0 {
            buf.len().min(self.left as usize)
        } else {
            n
        };
        for chunk in buf[..n].chunks_mut(8) {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            chunk.copy_from_slice(&self.x.to_le_bytes()[..chunk.len()]);
        }
        self.hash.lock().expect("hash").update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

#[test]
fn a_multi_gib_backup_restores_byte_exact() {
    let Some(server) = services::s3() else { return };
    let rt = runtime();
    rt.block_on(async {
        let opts = S3Options {
            part_size: 16 * MIB,
            concurrency: 4,
            ..S3Options::default()
        };
        let store = store_at(&server, &server.endpoint, &fresh_prefix("big"), opts).await;
        let repo = Repository::new(Arc::new(store.clone()));
        let (recipients, identities) = key_pair();
        let hash = Arc::new(std::sync::Mutex::new(Sha256::new()));
        let len = (2u64 << 30) + 12_345;
        let noise = Noise {
            left: len,
            x: 0x9e37_79b9_7f4a_7c15,
            hash: Arc::clone(&hash),
        };
        let m = repo
            .backup(
                Source::reader("noise", noise),
                &options(&recipients).with_level(1),
            )
            .await
            .expect("backup");
        let produced: [u8; 32] = hash.lock().expect("hash").clone().finalize().into();
        assert_eq!(m.sizes.raw, len);
        assert_eq!(m.sha256.plaintext.to_string(), hex::encode(produced));
        assert!(m.sizes.stored > 2 << 30, "stored {} bytes", m.sizes.stored);
        // Verify streams it back through ranged GETs and checks both digests
        // against the manifest.
        let report = repo
            .verify(&m, &identities, Arc::new(backup_core::NoProgress))
            .await
            .expect("verify");
        assert_eq!(report.raw, len);
        assert!(store.incomplete("").await.expect("incomplete").is_empty());
    });
}

#[test]
fn dropped_connections_are_retried_and_the_upload_is_exact() {
    let Some(server) = services::s3() else { return };
    let rt = runtime();
    rt.block_on(async {
        let prefix = fresh_prefix("transient");
        let (proxy, store) = behind_proxy(&server, &prefix, small_parts()).await;
        // The next 4 connections die after 1 MiB of request: mid-part.
        proxy.set(Fault::ResetAfter { bytes: MIB as u64 }, Some(4));
        let data = pattern(23 * MIB + 7, 42);
        store
            .put("data/retried", stream_in_chunks(&data, MIB))
            .await
            .expect("put despite dropped connections");
        assert!(proxy.faulted() >= 1, "the fault was never triggered");
        proxy.set(Fault::None, None);
        assert!(read_all(&store, "data/retried").await == data);

        // Downloads survive dropped connections too.
        proxy.set(Fault::ResetAfter { bytes: 200 }, Some(2));
        let direct = store_at(&server, &server.endpoint, &prefix, small_parts()).await;
        assert_eq!(
            direct.head("data/retried").await.expect("head").size,
            data.len() as u64
        );
        assert!(read_all(&store, "data/retried").await == data);
    });
}

#[test]
fn a_connection_that_goes_silent_is_abandoned_and_retried() {
    let Some(server) = services::s3() else { return };
    let rt = runtime();
    rt.block_on(async {
        let opts = S3Options {
            attempt_timeout: Duration::from_secs(2),
            ..small_parts()
        };
        let (proxy, store) = behind_proxy(&server, &fresh_prefix("stall"), opts).await;
        // The next 2 connections black-hole everything after 64 KiB.
        proxy.set(Fault::StallAfter { bytes: 64 << 10 }, Some(2));
        let data = pattern(12 * MIB, 9);
        store
            .put("data/stalled", stream_in_chunks(&data, MIB))
            .await
            .expect("put despite silent connections");
        assert!(proxy.faulted() >= 1, "the fault was never triggered");
        assert!(read_all(&store, "data/stalled").await == data);
    });
}

#[test]
fn a_part_corrupted_in_transit_is_refused_not_stored() {
    let Some(server) = services::s3() else { return };
    let rt = runtime();
    rt.block_on(async {
        let (proxy, store) = behind_proxy(&server, &fresh_prefix("corrupt"), small_parts()).await;
        // Every connection has one byte flipped 3 MiB in: inside a part's
        // body, past any headers.
        proxy.set(Fault::FlipAt { at: 3 * MIB as u64 }, None);
        let data = pattern(12 * MIB, 11);
        let err = store
            .put("data/corrupt", stream_in_chunks(&data, MIB))
            .await
            .expect_err("a corrupted part must not be accepted");
        eprintln!("corrupted part refused: {err}");
        assert!(err.to_string().contains("data/corrupt"), "{err}");
        proxy.set(Fault::None, None);
        assert!(
            store
                .head("data/corrupt")
                .await
                .expect_err("absent")
                .is_not_found()
        );
        assert!(store.incomplete("").await.expect("incomplete").is_empty());
    });
}

#[test]
fn a_permanent_fault_aborts_cleanly() {
    let Some(server) = services::s3() else { return };
    let rt = runtime();
    rt.block_on(async {
        let prefix = fresh_prefix("permanent");
        let opts = S3Options {
            max_attempts: 3,
            ..small_parts()
        };
        let (proxy, store) = behind_proxy(&server, &prefix, opts).await;
        let repo = Repository::new(Arc::new(store));
        let (recipients, _) = key_pair();
        // Every request larger than 1 MiB is cut off: small requests
        // (create, abort) pass, parts never do.
        proxy.set(Fault::ResetAfter { bytes: MIB as u64 }, None);
        let data = pattern(20 * MIB, 7);
        let err = repo
            .backup(
                Source::reader("doomed", std::io::Cursor::new(data)),
                &options(&recipients).with_level(1),
            )
            .await
            .expect_err("the backup must fail");
        let text = err.to_string();
        assert!(text.contains("data/"), "names the object: {text}");
        assert!(matches!(err, Error::Store { .. }), "{err:?}");

        let direct = store_at(&server, &server.endpoint, &prefix, small_parts()).await;
        assert!(
            direct.incomplete("").await.expect("incomplete").is_empty(),
            "upload aborted"
        );
        assert!(
            direct.list("").await.expect("list").is_empty(),
            "nothing stored"
        );
        assert!(
            Repository::new(Arc::new(direct))
                .list()
                .await
                .expect("list")
                .backups
                .is_empty()
        );
    });
}

#[test]
fn gc_removes_unfinished_uploads_and_unreferenced_objects() {
    let Some(server) = services::s3() else { return };
    let rt = runtime();
    rt.block_on(async {
        let prefix = fresh_prefix("gc");
        let store = store_at(&server, &server.endpoint, &prefix, small_parts()).await;
        // A multipart upload whose writer vanished: dropped after its first
        // parts went up.
        let slow = stream_in_chunks(&pattern(12 * MIB, 1), MIB)
            .chain(futures::stream::pending())
            .boxed();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            store.put("data/killed.zst.age", slow),
        )
        .await;
        assert_eq!(store.incomplete("").await.expect("incomplete").len(), 1);
        // A data object whose manifest was never written.
        store
            .put_bytes("data/orphan.zst.age", Bytes::from_static(b"orphan"))
            .await
            .expect("put");
        // And a real backup, which must survive.
        let repo = Repository::new(Arc::new(store.clone()));
        let (recipients, identities) = key_pair();
        let m = repo
            .backup(
                Source::reader("keep", &b"keep me"[..]),
                &options(&recipients),
            )
            .await
            .expect("backup");

        let dry = repo.gc(Duration::ZERO, false).await.expect("dry run");
        assert_eq!((dry.incomplete.len(), dry.unreferenced.len()), (1, 1));
        assert_eq!(
            store.incomplete("").await.expect("incomplete").len(),
            1,
            "dry run keeps"
        );
        let young = repo.gc(Duration::from_secs(3600), true).await.expect("gc");
        assert!(young.incomplete.is_empty() && young.unreferenced.is_empty());

        let done = repo.gc(Duration::ZERO, true).await.expect("gc");
        assert_eq!((done.incomplete.len(), done.unreferenced.len()), (1, 1));
        assert!(store.incomplete("").await.expect("incomplete").is_empty());
        let data: Vec<_> = store
            .list("data/")
            .await
            .expect("list")
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(data, vec![m.object.clone()]);
        repo.verify(&m, &identities, Arc::new(backup_core::NoProgress))
            .await
            .expect("the kept backup is intact");
    });
}

/// `ls` and a one-file restore from a directory backup on Garage read the
/// index and the frames holding the file, beside a full restore: bytes
/// counted by the proxy between us and the server (HTTP included).
/// `SHIPSHAPE_PARTS_MIB` sets the backup's size (64 MiB by default;
/// benches/partial-restore.sh runs it at 4 GiB).
#[test]
fn ls_and_one_file_read_only_the_index_and_its_frames() {
    let Some(server) = services::s3() else {
        return;
    };
    let mib: usize = std::env::var("SHIPSHAPE_PARTS_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tmp");
    let tree = dir.path().join("tree");
    // 1 MiB files of noise (nothing to compress), 64 to a directory.
    let mut x = 0x2545_f491_u32;
    for i in 0..mib {
        let sub = tree.join(format!("d{:03}", i / 64));
        std::fs::create_dir_all(&sub).expect("dir");
        let mut data = vec![0u8; MIB];
        for b in &mut data {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        std::fs::write(sub.join(format!("f{:04}.bin", i % 64)), &data).expect("file");
    }
    let (proxy, store) = rt.block_on(behind_proxy(
        &server,
        &fresh_prefix("parts"),
        S3Options::default(),
    ));
    let repo = Repository::new(Arc::new(store));
    let (recipients, ids) = key_pair();
    let m = rt
        .block_on(repo.backup(Source::path(&tree), &options(&recipients)))
        .expect("backup");
    let index = m.index.clone().expect("an index");

    proxy.take_downloaded();
    let entries = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = Arc::clone(&entries);
    rt.block_on(repo.ls(&m, &ids, ".", move |_| {
        seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }))
    .expect("ls");
    let ls = proxy.take_downloaded();

    let pick = format!("d{:03}/f{:04}.bin", (mib / 2) / 64, (mib / 2) % 64);
    let one = dir.path().join("one");
    rt.block_on(repo.restore(
        &m,
        &ids,
        backup_core::RestoreTarget::Path(one.clone()),
        &backup_core::RestoreOptions::default().with_include([pick.clone()]),
    ))
    .expect("one file");
    let one_file = proxy.take_downloaded();
    assert_eq!(
        std::fs::read(one.join(&pick)).expect("restored"),
        std::fs::read(tree.join(&pick)).expect("original")
    );

    rt.block_on(repo.restore(
        &m,
        &ids,
        backup_core::RestoreTarget::Writer(Box::new(std::io::sink())),
        &backup_core::RestoreOptions::default(),
    ))
    .expect("full restore");
    let full = proxy.take_downloaded();
    eprintln!(
        "parts on Garage: {mib} MiB backup, {} B stored, index {} B, {} entries: \
         ls read {ls} B, one 1 MiB file read {one_file} B, full restore read {full} B",
        m.sizes.stored,
        index.stored,
        entries.load(std::sync::atomic::Ordering::Relaxed)
    );
    // Each request costs a few hundred bytes of HTTP headers.
    assert!(ls < index.stored + 16 * 1024, "ls read {ls} B");
    assert!(
        one_file < index.stored + 3 * MIB as u64,
        "one file read {one_file} B"
    );
    assert!(full >= m.sizes.stored, "full restore read {full} B");
}
