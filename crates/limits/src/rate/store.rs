//! A bounded, sharded key store: the rate limiter's memory is fixed by its
//! capacity however many clients come.

use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Arc, Mutex, PoisonError};

use governor::nanos::Nanos;
use governor::state::StateStore;
use hashbrown::HashTable;

const SHARDS: usize = 16;

/// State the store can rank for eviction: the entry with the lowest rank
/// is the one whose loss changes the fewest decisions (its limit is nearest
/// to fully restored).
pub(crate) trait Rank: Copy {
    fn rank(&self) -> u64;
}

impl Rank for Nanos {
    /// GCRA's theoretical arrival time: the smallest is the key nearest to
    /// a full burst.
    fn rank(&self) -> u64 {
        self.as_u64()
    }
}

/// Per-key state in `SHARDS` mutex-guarded maps. Memory is at most
/// `capacity` entries (rounded up to a multiple of the shard count); a new
/// key in a full shard evicts that shard's lowest-ranked entry.
#[derive(Debug)]
pub(crate) struct BoundedStore<K, V = Nanos> {
    shards: Vec<Mutex<HashTable<(K, V)>>>,
    per_shard: usize,
    hasher: RandomState,
}

impl<K: Hash + Eq + Clone, V: Rank> BoundedStore<K, V> {
    /// A store for at most `capacity` keys (at least one per shard).
    pub(crate) fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        BoundedStore {
            shards: (0..SHARDS).map(|_| Mutex::new(HashTable::new())).collect(),
            per_shard,
            hasher: RandomState::new(),
        }
    }

    /// Keys held now.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Keys the store holds at most.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    /// Runs `f` on the key's state (`None` for a new key) under the shard's
    /// lock and stores what it returns, if anything.
    pub(crate) fn update<T, E>(
        &self,
        key: &K,
        f: impl FnOnce(Option<V>) -> Result<(T, Option<V>), E>,
    ) -> Result<T, E> {
        // One hash per decision: its top bits pick the shard, the table
        // uses all of it.
        let hash = self.hasher.hash_one(key);
        let shard = &self.shards[(hash >> 60) as usize % SHARDS];
        let mut table = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = table.find_mut(hash, |(k, _)| k == key);
        let old = slot.as_ref().map(|(_, v)| *v);
        let (out, new) = f(old)?;
        let Some(new) = new else {
            return Ok(out);
        };
        if let Some((_, v)) = slot {
            *v = new;
            return Ok(out);
        }
        if table.len() >= self.per_shard {
            let victim = table
                .iter()
                .min_by_key(|(_, v)| v.rank())
                .map(|(k, _)| k.clone());
            if let Some(victim) = victim {
                let h = self.hasher.hash_one(&victim);
                if let Ok(entry) = table.find_entry(h, |(k, _)| *k == victim) {
                    entry.remove();
                }
            }
        }
        table.insert_unique(hash, (key.clone(), new), |(k, _)| self.hasher.hash_one(k));
        Ok(out)
    }
}

/// A [`BoundedStore`] shared between governor's limiter and the code that
/// reports its size.
#[derive(Debug)]
pub(crate) struct Shared<K>(pub(crate) Arc<BoundedStore<K, Nanos>>);

impl<K: Hash + Eq + Clone> StateStore for Shared<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0
            .update(key, |old| f(old).map(|(t, new)| (t, Some(new))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_holds_more_than_its_capacity_and_evicts_the_lowest_rank() {
        let store: BoundedStore<u32> = BoundedStore::new(32);
        for k in 0..10_000u32 {
            store
                .update(&k, |_| Ok::<_, ()>(((), Some(Nanos::from(u64::from(k))))))
                .ok();
        }
        assert!(store.len() <= store.capacity());
        // The newest keys (highest rank) survive.
        let survived = store
            .update(&9_999, |old| Ok::<_, ()>((old, None)))
            .ok()
            .flatten();
        assert_eq!(survived, Some(Nanos::from(9_999)));
    }
}
