use super::*;
use std::sync::atomic::AtomicU32;

fn cache() -> ResponseCache {
    ResponseCache::new(CacheConfig::default(), Bus::memory(), "test".into())
}

fn fresh(output: &str) -> Fresh {
    Ok(Answer { output: output.into(), route: "sim/x".into(), ..Default::default() })
}

impl Produced {
    /// The answer (a failure fails the test), its source and lease.
    fn parts(self) -> (Answer, Source, Option<Lease>) {
        (self.fresh.expect("an answer"), self.source, self.lease)
    }
}

async fn lease_of(bus: &Bus, key: &str) -> Option<String> {
    let v = bus.kv_get(Bucket::Leases, key).await.unwrap()?;
    Some(String::from_utf8_lossy(&v).into_owned())
}

#[tokio::test]
async fn concurrent_identical_requests_make_one_call() {
    let cache = Arc::new(cache());
    let calls = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (cache, calls) = (cache.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            let (f, s, lease) = cache
                .get_or_compute("k", true, || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    fresh("{\"a\":1}")
                })
                .await
                .parts();
            if let Some(l) = lease {
                l.release().await;
            }
            (f, s)
        }));
    }
    let mut sources = Vec::new();
    for t in tasks {
        let (f, s) = t.await.unwrap();
        assert_eq!(f.output, "{\"a\":1}");
        sources.push(s);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(sources.iter().filter(|s| **s == Source::Model).count(), 1);
    assert_eq!(cache.stats.coalesced.load(Ordering::SeqCst), 15);
    assert!(cache.inflight.is_empty(), "the flight ends with its leader");
}

#[tokio::test]
async fn only_stored_answers_are_served_and_evicted_ones_are_not() {
    let bus = Bus::memory();
    let c = ResponseCache::new(CacheConfig::default(), bus.clone(), "a".into());
    // A fresh answer is not cached by the worker itself: validation comes first.
    let (_, s, lease) = c.get_or_compute("k", true, || async { fresh("{}") }).await.parts();
    assert_eq!(s, Source::Model);
    let lease = lease.expect("computed under the lease");
    assert_eq!(lease_of(&bus, "k").await.as_deref(), Some("a"));
    lease.release().await;
    assert_eq!(lease_of(&bus, "k").await, None, "released");
    let (_, s, lease) = c.get_or_compute("k", true, || async { fresh("{}") }).await.parts();
    assert_eq!(s, Source::Model);
    // Handed over: the coordinator ends it when it stores or evicts the answer.
    lease.expect("lease").hand_over();
    assert_eq!(lease_of(&bus, "k").await.as_deref(), Some("a"));
    // Accepted by the coordinator: served from the shared tier, then locally.
    let answer = CachedAnswer {
        output: "{\"b\":2}".into(),
        route: "r".into(),
        prompt_tokens: 1,
        completion_tokens: 1,
        dialect: "json_schema".into(),
    };
    store_accepted(&bus, "k", &answer).await;
    assert_eq!(lease_of(&bus, "k").await, None, "storing ends the lease");
    let other = ResponseCache::new(CacheConfig::default(), bus.clone(), "b".into());
    let (f, s, lease) = other.get_or_compute("k", true, || async { fresh("never") }).await.parts();
    assert_eq!((f.output.as_str(), s), ("{\"b\":2}", Source::Shared));
    assert!(lease.is_none());
    assert_eq!(f.usage.cache_hits, 1);
    assert_eq!(f.usage.calls, 0);
    // The lease asked for together with the read that found the answer is let go.
    for _ in 0..100 {
        if lease_of(&bus, "k").await.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(lease_of(&bus, "k").await, None, "a hit keeps no lease");
    let (_, s, _) = other.get_or_compute("k", true, || async { fresh("never") }).await.parts();
    assert_eq!(s, Source::Local);
    // Evicted after a rejection: a new process does not get it back.
    evict_rejected(&bus, "k").await;
    let third = ResponseCache::new(CacheConfig::default(), bus, "c".into());
    let (f, s, _) =
        third.get_or_compute("k", true, || async { fresh("{\"new\":1}") }).await.parts();
    assert_eq!((f.output.as_str(), s), ("{\"new\":1}", Source::Model));
    // A re-ask never reads the cache.
    let (_, s, _) = other.get_or_compute("k", false, || async { fresh("{}") }).await.parts();
    assert_eq!(s, Source::Model);
}

#[tokio::test]
async fn a_cancelled_leader_leaves_neither_its_flight_nor_its_lease() {
    let bus = Bus::memory();
    let cache = Arc::new(ResponseCache::new(CacheConfig::default(), bus.clone(), "w".into()));
    let started = Arc::new(tokio::sync::Notify::new());
    let leader = {
        let (cache, started) = (cache.clone(), started.clone());
        tokio::spawn(async move {
            cache
                .get_or_compute("k", true, || async move {
                    started.notify_one();
                    std::future::pending::<Fresh>().await
                })
                .await
        })
    };
    started.notified().await;
    assert_eq!(lease_of(&bus, "k").await.as_deref(), Some("w"));
    let follower = {
        let cache = cache.clone();
        tokio::spawn(async move {
            let (f, s, lease) =
                cache.get_or_compute("k", true, || async { fresh("{\"n\":1}") }).await.parts();
            (f.output, s, lease.map(|l| l.key().to_string()))
        })
    };
    // The follower waits on the leader's flight until the leader is cancelled.
    tokio::task::yield_now().await;
    leader.abort();
    let (output, source, lease) = tokio::time::timeout(Duration::from_secs(10), follower)
        .await
        .expect("follower stuck")
        .unwrap();
    assert_eq!((output.as_str(), source), ("{\"n\":1}", Source::Model));
    assert_eq!(lease.as_deref(), Some("k"), "the follower led and computed under the lease");
    assert!(cache.inflight.is_empty(), "no flight left behind");
    // A leader cancelled with nobody following leaves nothing behind either.
    let lone = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache.get_or_compute("k2", true, std::future::pending::<Fresh>).await
        })
    };
    while !cache.inflight.contains_key("k2") {
        tokio::task::yield_now().await;
    }
    lone.abort();
    let _ = lone.await;
    assert!(cache.inflight.is_empty(), "the cancelled leader's flight is gone");
    // The follower dropped its lease without handing it over: released in the background.
    for _ in 0..100 {
        if lease_of(&bus, "k").await.is_none() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(lease_of(&bus, "k").await, None);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_takes_the_lease_over_when_its_holder_is_gone() {
    let bus = Bus::memory();
    // A peer process took the lease and died: nobody renews it.
    assert!(bus.kv_create(Bucket::Leases, "k", b"dead".to_vec().into()).await.unwrap());
    let cache = Arc::new(ResponseCache::new(CacheConfig::default(), bus.clone(), "w".into()));
    let calls = Arc::new(AtomicU32::new(0));
    let waiter = {
        let (cache, bus, calls) = (cache.clone(), bus.clone(), calls.clone());
        tokio::spawn(async move {
            let (f, s, lease) = cache
                .get_or_compute("k", true, || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    // It computes as the lease's holder, not beside a live one.
                    let holder = lease_of(&bus, "k").await;
                    fresh(&format!("{{\"holder\":{holder:?}}}"))
                })
                .await
                .parts();
            (f.output, s, lease.map(Lease::hand_over).is_some())
        })
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no call while the holder's lease lives");
    // The lease lapses (in NATS: its TTL passes without a renewal).
    bus.kv_delete(Bucket::Leases, "k").await.unwrap();
    let (output, source, leased) = waiter.await.unwrap();
    assert_eq!(source, Source::Model);
    assert_eq!(output, "{\"holder\":Some(\"w\")}");
    assert!(leased);
    assert_eq!(cache.stats.takeovers.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_gets_the_holders_answer_once_accepted() {
    let bus = Bus::memory();
    assert!(bus.kv_create(Bucket::Leases, "k", b"peer".to_vec().into()).await.unwrap());
    let cache = ResponseCache::new(CacheConfig::default(), bus.clone(), "w".into());
    let answer = CachedAnswer {
        output: "{\"p\":1}".into(),
        route: "r".into(),
        prompt_tokens: 1,
        completion_tokens: 1,
        dialect: "json_schema".into(),
    };
    let accept = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        store_accepted(&bus, "k", &answer).await;
    };
    let (produced, ()) =
        tokio::join!(cache.get_or_compute("k", true, || async { fresh("never") }), accept);
    let (f, s, lease) = produced.parts();
    assert_eq!((f.output.as_str(), s), ("{\"p\":1}", Source::Shared));
    assert!(lease.is_none());
}

#[test]
fn the_seed_and_the_prompt_are_part_of_the_key() {
    let mut t = StepTask {
        routes: vec!["sim/default".into()],
        brief: Some(Default::default()),
        ..Default::default()
    };
    let a = ResponseCache::key(&t, "sys", "user");
    assert_eq!(a, ResponseCache::key(&t, "sys", "user"));
    assert_ne!(a, ResponseCache::key(&t, "sys", "user!"));
    if let Some(b) = t.brief.as_mut() {
        b.seed = 9;
    }
    assert_ne!(a, ResponseCache::key(&t, "sys", "user"));
    t.routes = vec!["openai/gpt-4o".into()];
    assert_ne!(a, ResponseCache::key(&t, "sys", "user"));
}
