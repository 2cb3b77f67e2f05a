//! The local subscriber hub: topics, their subscribers' bounded queues, and the seen-message
//! cache that makes every message reach each subscriber once, whichever way it came
//! (gossipsub, our own `publish`, the replica fan-out).
//!
//! A queue that is full when a message arrives ends its subscriber: the queue is emptied at
//! once (its memory given back) and the receiver sees the end with
//! [`Ended::SlowSubscriber`]. Nothing is ever buffered past `subscriber_queue_len`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hydrant_budget::Grant;
use tokio::sync::Notify;

use super::PubSubMessage;

/// Why a [`super::Subscription`] ended (its receiver returned `None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Its queue was full when a message arrived: the subscriber did not read fast enough.
    SlowSubscriber,
    /// The node is stopping.
    Closed,
}

/// A message in a queue, with its share of the memory budget (one grant per message, shared
/// by every queue holding it, given back when the last one lets it go).
pub(super) type Queued = (Arc<PubSubMessage>, Arc<Grant>);

/// One subscriber's queue: the hub pushes, the [`super::Subscription`] pops.
#[derive(Default)]
pub(super) struct Slot {
    state: Mutex<SlotState>,
    ready: Notify,
}

#[derive(Default)]
struct SlotState {
    queue: VecDeque<Queued>,
    ended: Option<Ended>,
}

impl Slot {
    /// Queues `item` unless `cap` are already waiting; then the slot ends as slow, its queue is
    /// emptied, and `false` is returned.
    fn push(&self, item: Queued, cap: usize) -> bool {
        let mut s = crate::lock(&self.state);
        if s.ended.is_some() {
            return false;
        }
        if s.queue.len() >= cap {
            s.ended = Some(Ended::SlowSubscriber);
            s.queue = VecDeque::new();
            drop(s);
            self.ready.notify_one();
            return false;
        }
        s.queue.push_back(item);
        drop(s);
        self.ready.notify_one();
        true
    }

    /// Ends the slot with `why` (no effect once ended).
    pub(super) fn end(&self, why: Ended) {
        let mut s = crate::lock(&self.state);
        if s.ended.is_none() {
            s.ended = Some(why);
            s.queue = VecDeque::new();
        }
        drop(s);
        self.ready.notify_one();
    }

    /// The next message, or `None` once the slot ended.
    ///
    /// # Cancel safety
    /// Cancel safe: a message is taken from the queue only when this returns it.
    pub(super) async fn recv(&self) -> Option<Arc<PubSubMessage>> {
        loop {
            {
                let mut s = crate::lock(&self.state);
                if let Some((message, _grant)) = s.queue.pop_front() {
                    return Some(message);
                }
                if s.ended.is_some() {
                    return None;
                }
            }
            // `notify_one` stores a permit, so a push between the check and here is not lost.
            self.ready.notified().await;
        }
    }

    /// Why the slot ended, if it did.
    pub(super) fn ended(&self) -> Option<Ended> {
        crate::lock(&self.state).ended
    }
}

/// Message IDs seen in the last `ttl`, at most `max` of them (the oldest forgotten first when
/// full, counted in `evicted_early`). Each entry costs its ID (from + seqno, about 46 bytes)
/// twice plus the instant: about 150 bytes with the collections' overhead.
pub(super) struct SeenCache {
    ttl: Duration,
    max: usize,
    order: VecDeque<(Instant, Arc<[u8]>)>,
    ids: HashSet<Arc<[u8]>>,
    /// Entries forgotten before their TTL because the cache was full.
    pub(super) evicted_early: u64,
}

/// Approximate bytes of one [`SeenCache`] entry besides its ID: the deque slot, the set slot and
/// the `Arc` header.
pub(super) const SEEN_ENTRY_OVERHEAD: usize = 72;

impl SeenCache {
    pub(super) fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max,
            order: VecDeque::new(),
            ids: HashSet::new(),
            evicted_early: 0,
        }
    }

    /// Records `id` as seen at `now`; `false` when it was already seen within the TTL.
    pub(super) fn insert(&mut self, id: &[u8], now: Instant) -> bool {
        self.expire(now);
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() >= self.max
            && let Some((_, old)) = self.order.pop_front()
        {
            self.ids.remove(&old);
            self.evicted_early += 1;
        }
        let id: Arc<[u8]> = id.into();
        self.ids.insert(id.clone());
        self.order.push_back((now, id));
        true
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.ttl {
                break;
            }
            let (_, id) = self.order.pop_front().expect("checked");
            self.ids.remove(&id);
        }
    }

    /// Entries held now.
    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    /// Approximate bytes held now.
    pub(super) fn bytes(&self) -> usize {
        self.order
            .iter()
            .map(|(_, id)| id.len() + SEEN_ENTRY_OVERHEAD)
            .sum()
    }
}

/// Topics with local subscribers and their slots.
#[derive(Default)]
pub(super) struct Topics {
    topics: HashMap<String, HashMap<u64, Arc<Slot>>>,
    subscribers: usize,
    next_id: u64,
}

impl Topics {
    /// Subscribers over all topics.
    pub(super) fn subscribers(&self) -> usize {
        self.subscribers
    }

    /// Topics with at least one subscriber.
    pub(super) fn names(&self) -> impl Iterator<Item = &String> {
        self.topics.keys()
    }

    /// Whether `topic` has subscribers.
    pub(super) fn contains(&self, topic: &str) -> bool {
        self.topics.contains_key(topic)
    }

    /// Topics held now.
    pub(super) fn len(&self) -> usize {
        self.topics.len()
    }

    /// Adds a subscriber to `topic`; returns its ID and slot.
    pub(super) fn add(&mut self, topic: &str) -> (u64, Arc<Slot>) {
        let id = self.next_id;
        self.next_id += 1;
        let slot = Arc::new(Slot::default());
        self.topics
            .entry(topic.to_owned())
            .or_default()
            .insert(id, slot.clone());
        self.subscribers += 1;
        (id, slot)
    }

    /// Removes subscriber `id` of `topic`; `true` when the topic has none left.
    pub(super) fn remove(&mut self, topic: &str, id: u64) -> bool {
        let Some(subs) = self.topics.get_mut(topic) else {
            return false;
        };
        if subs.remove(&id).is_some() {
            self.subscribers -= 1;
        }
        if subs.is_empty() {
            self.topics.remove(topic);
            return true;
        }
        false
    }

    /// Queues `item` for every subscriber of its topic, at most `cap` per queue. Returns how
    /// many got it and how many were dropped as slow (removed from the topic), and whether the
    /// topic is left without subscribers.
    pub(super) fn fan_out(&mut self, item: &Queued, cap: usize) -> (u64, u64, bool) {
        let Some(subs) = self.topics.get_mut(&item.0.topic) else {
            return (0, 0, false);
        };
        let before = subs.len();
        subs.retain(|_, slot| slot.push(item.clone(), cap));
        let (kept, dropped) = (subs.len(), before - subs.len());
        self.subscribers -= dropped;
        if kept == 0 {
            self.topics.remove(&item.0.topic);
        }
        (kept as u64, dropped as u64, kept == 0)
    }

    /// Ends every slot (the node is stopping).
    pub(super) fn close_all(&mut self) {
        for slot in self.topics.values().flat_map(|s| s.values()) {
            slot.end(Ended::Closed);
        }
        self.topics.clear();
        self.subscribers = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_cache_forgets_after_ttl_and_stays_bounded() {
        let t0 = Instant::now();
        let mut seen = SeenCache::new(Duration::from_secs(120), 3);
        assert!(seen.insert(b"a", t0));
        assert!(
            !seen.insert(b"a", t0 + Duration::from_secs(119)),
            "a duplicate"
        );
        assert!(
            seen.insert(b"a", t0 + Duration::from_secs(120)),
            "forgotten after the TTL"
        );
        let t1 = t0 + Duration::from_secs(120);
        assert!(seen.insert(b"b", t1));
        assert!(seen.insert(b"c", t1));
        assert!(seen.insert(b"d", t1), "full: the oldest goes");
        assert_eq!((seen.len(), seen.evicted_early), (3, 1));
        assert!(seen.insert(b"a", t1), "a was evicted early");
        assert!(seen.bytes() >= 3 * SEEN_ENTRY_OVERHEAD);
    }
}
