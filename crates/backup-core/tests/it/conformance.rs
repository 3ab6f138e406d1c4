//! One conformance suite for every `Store`: the same checks run against the
//! in-memory store, the local directory store and (in `s3.rs`) S3 on a
//! real Garage server.

use std::sync::Arc;

use backup_core::store::ByteStream;
use backup_core::{Error, LocalStore, MemoryStore, Store, StoreExt};
use bytes::Bytes;
use futures::StreamExt;

use crate::support::runtime;

fn stream_of(chunks: Vec<Bytes>) -> ByteStream {
    futures::stream::iter(chunks.into_iter().map(Ok)).boxed()
}

pub(crate) async fn read_all(store: &dyn Store, key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = store.get(key).await.expect("get");
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.expect("chunk"));
    }
    out
}

/// Runs every check against a fresh store from `make`.
pub(crate) fn suite(make: impl Fn() -> Arc<dyn Store>) {
    let rt = runtime();
    rt.block_on(put_get_head_delete(make().as_ref()));
    rt.block_on(empty_and_large_objects(make().as_ref()));
    rt.block_on(overwrite_replaces(make().as_ref()));
    rt.block_on(listing_many_keys(make().as_ref()));
    rt.block_on(not_found_everywhere(make().as_ref()));
    rt.block_on(failed_stream_leaves_nothing(make().as_ref()));
    rt.block_on(invalid_keys_are_refused(make().as_ref()));
    rt.block_on(concurrent_writers(make()));
    rt.block_on(multipart_sized_objects(make().as_ref()));
    rt.block_on(ranged_reads(make().as_ref()));
}

/// `get_range`: any part of an object, fewer bytes where it ends first,
/// nothing past its end, and not found for a missing key.
async fn ranged_reads(store: &dyn Store) {
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    store
        .put("data/ranged", stream_of(vec![Bytes::from(data.clone())]))
        .await
        .expect("put");
    for (start, len) in [
        (0, 10),
        (65_536, 70_000),
        (299_990, 10),
        (299_990, 100),
        (250_000, 0),
    ] {
        let got = store
            .get_range("data/ranged", start, len)
            .await
            .expect("range");
        let from = (start as usize).min(data.len());
        let to = ((start + len) as usize).min(data.len());
        assert_eq!(got.as_ref(), &data[from..to], "{start}+{len}");
    }
    let past = store.get_range("data/ranged", 400_000, 10).await;
    assert!(past.is_ok_and(|b| b.is_empty()), "past the end: nothing");
    assert!(
        store
            .get_range("data/missing", 0, 10)
            .await
            .expect_err("missing")
            .is_not_found()
    );
}

/// Objects spanning several 5 MiB parts (where a store has parts), with a
/// failure half-way that must leave neither an object nor an unfinished
/// write.
async fn multipart_sized_objects(store: &dyn Store) {
    let data: Vec<u8> = (0..11 * 1024 * 1024 + 17u32)
        .map(|i| (i % 241) as u8)
        .collect();
    let chunks = data.chunks(1 << 20).map(Bytes::copy_from_slice).collect();
    store
        .put("data/multi", stream_of(chunks))
        .await
        .expect("put");
    assert_eq!(read_all(store, "data/multi").await, data);

    let mut chunks: Vec<backup_core::Result<Bytes>> = data
        .chunks(1 << 20)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    chunks.push(Err(Error::Interrupted("producer failed late".into())));
    let err = store
        .put("data/failed-late", futures::stream::iter(chunks).boxed())
        .await
        .expect_err("must fail");
    assert!(matches!(err, Error::Interrupted(_)), "{err}");
    assert!(store.head("data/failed-late").await.is_err());
    assert!(store.incomplete("").await.expect("incomplete").is_empty());
}

async fn put_get_head_delete(store: &dyn Store) {
    let meta = store
        .put(
            "data/a",
            stream_of(vec![
                Bytes::from_static(b"hello "),
                Bytes::from_static(b"world"),
            ]),
        )
        .await
        .expect("put");
    assert_eq!((meta.key.as_str(), meta.size), ("data/a", 11));
    assert_eq!(read_all(store, "data/a").await, b"hello world");
    let head = store.head("data/a").await.expect("head");
    assert_eq!(head.size, 11);
    assert!(head.modified.is_some());
    store.delete("data/a").await.expect("delete");
    assert!(store.head("data/a").await.expect_err("gone").is_not_found());
}

async fn empty_and_large_objects(store: &dyn Store) {
    store
        .put("empty", stream_of(vec![]))
        .await
        .expect("put empty");
    assert_eq!(read_all(store, "empty").await, b"");
    assert_eq!(store.head("empty").await.expect("head").size, 0);

    // 5 MiB in uneven chunks.
    let data: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let chunks = data.chunks(300_007).map(Bytes::copy_from_slice).collect();
    let meta = store
        .put("big/object", stream_of(chunks))
        .await
        .expect("put big");
    assert_eq!(meta.size, data.len() as u64);
    assert_eq!(read_all(store, "big/object").await, data);
}

async fn overwrite_replaces(store: &dyn Store) {
    store
        .put_bytes("k", Bytes::from_static(b"first version"))
        .await
        .expect("put");
    store
        .put_bytes("k", Bytes::from_static(b"second"))
        .await
        .expect("put");
    assert_eq!(read_all(store, "k").await, b"second");
    assert_eq!(
        store.get_bytes("k", 100).await.expect("get_bytes"),
        "second"
    );
    assert!(store.get_bytes("k", 3).await.is_err(), "limit is enforced");
}

async fn listing_many_keys(store: &dyn Store) {
    for i in 0..150 {
        store
            .put_bytes(
                &format!("manifests/{i:04}.json"),
                Bytes::from(vec![b'x'; i]),
            )
            .await
            .expect("put");
    }
    for i in 0..20 {
        store
            .put_bytes(&format!("data/sub/{i}"), Bytes::from_static(b"d"))
            .await
            .expect("put");
    }
    let listed = store.list("manifests/").await.expect("list");
    assert_eq!(listed.len(), 150);
    assert!(listed.windows(2).all(|w| w[0].key < w[1].key), "sorted");
    assert_eq!(listed[7].size, 7);
    assert_eq!(store.list("data/").await.expect("list").len(), 20);
    assert_eq!(store.list("manifests/001").await.expect("list").len(), 10);
    assert_eq!(store.list("").await.expect("list all").len(), 170);
    assert!(store.list("nothing/").await.expect("list").is_empty());
}

async fn not_found_everywhere(store: &dyn Store) {
    assert!(matches!(
        store.get("missing").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.head("missing").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.delete("missing").await,
        Err(Error::NotFound { .. })
    ));
}

async fn failed_stream_leaves_nothing(store: &dyn Store) {
    let chunks: Vec<backup_core::Result<Bytes>> = vec![
        Ok(Bytes::from(vec![1u8; 100_000])),
        Err(Error::Interrupted("producer failed".into())),
    ];
    let err = store
        .put("data/partial", futures::stream::iter(chunks).boxed())
        .await
        .expect_err("a failed stream must fail the put");
    assert!(matches!(err, Error::Interrupted(_)), "{err}");
    assert!(store.head("data/partial").await.is_err());
    assert!(store.list("data/").await.expect("list").is_empty());
}

async fn invalid_keys_are_refused(store: &dyn Store) {
    for key in ["", "/abs", "a/../b", "a//b", "trailing/"] {
        assert!(
            matches!(
                store.put_bytes(key, Bytes::new()).await,
                Err(Error::InvalidKey { .. })
            ),
            "{key:?}"
        );
    }
}

async fn concurrent_writers(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let body = Bytes::from(vec![i; 200_000 + usize::from(i)]);
            store
                .put_bytes(&format!("c/{i}"), body.clone())
                .await
                .expect("put own");
            store.put_bytes("c/shared", body).await.expect("put shared");
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    for i in 0..16u8 {
        assert_eq!(
            read_all(store.as_ref(), &format!("c/{i}")).await,
            vec![i; 200_000 + usize::from(i)]
        );
    }
    // The shared key holds exactly one writer's complete object.
    let shared = read_all(store.as_ref(), "c/shared").await;
    let first = shared[0];
    assert_eq!(shared, vec![first; 200_000 + usize::from(first)]);
    assert_eq!(store.list("c/").await.expect("list").len(), 17);
}

#[test]
fn memory_store_conforms() {
    suite(|| Arc::new(MemoryStore::new()));
}

#[test]
fn local_store_conforms() {
    let dirs = std::sync::Mutex::new(Vec::new());
    suite(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(LocalStore::new(dir.path().join("repo")));
        dirs.lock().expect("lock").push(dir);
        store
    });
}

#[test]
fn local_store_leaves_no_temporary_files() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::new(dir.path());
    rt.block_on(async {
        let chunks: Vec<backup_core::Result<Bytes>> = vec![
            Ok(Bytes::from(vec![1u8; 3 << 20])),
            Err(Error::Interrupted("stop".into())),
        ];
        let _ = store
            .put("data/x", futures::stream::iter(chunks).boxed())
            .await;
        // A put that is dropped half-way cleans up too.
        let slow = futures::stream::iter(vec![Ok(Bytes::from(vec![2u8; 1 << 20]))])
            .chain(futures::stream::pending())
            .boxed();
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(300),
            store.put("data/y", slow),
        )
        .await;
    });
    let left: Vec<_> = std::fs::read_dir(dir.path().join("data"))
        .expect("data dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn local_store_writes_every_size_exactly() {
    // Sizes around page and writeback-window boundaries.
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::new(dir.path());
    rt.block_on(async {
        for size in [
            1usize,
            4095,
            4096,
            4097,
            (1 << 20) - 1,
            1 << 20,
            (1 << 20) + 1,
            3_333_333,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
            let chunks = data.chunks(100_003).map(Bytes::copy_from_slice).collect();
            store.put("s", stream_of(chunks)).await.expect("put");
            assert_eq!(read_all(&store, "s").await, data, "size {size}");
        }
    });
}

#[test]
fn local_store_lists_and_aborts_leftover_temporary_files() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::new(dir.path());
    // What a process killed mid-put leaves behind.
    std::fs::create_dir_all(dir.path().join("data")).expect("mkdir");
    let leftover = dir
        .path()
        .join("data/.x.tar.zst.age.0123456789abcdef.partial");
    std::fs::write(&leftover, b"half an object").expect("write");
    std::fs::write(dir.path().join("data/.not-ours"), b"x").expect("write");
    rt.block_on(async {
        assert!(store.list("").await.expect("list").is_empty());
        let found = store.incomplete("data/").await.expect("incomplete");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].key, "data/x.tar.zst.age");
        assert!(found[0].started.is_some());
        // Only the store's own temporary files can be aborted.
        let mut forged = found[0].clone();
        forged.id = "data/.not-ours".into();
        assert!(store.abort(&forged).await.is_err());
        store.abort(&found[0]).await.expect("abort");
        assert!(!leftover.exists());
        assert!(dir.path().join("data/.not-ours").exists());
        assert!(store.incomplete("").await.expect("incomplete").is_empty());
    });
}
