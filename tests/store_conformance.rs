//! One conformance suite for every store backend, plus sled-only restart and crash tests.

use bytes::Bytes;
use futures::StreamExt;
use k1s::store::{Event, EventKind, Revision, Store, StoreError, WatchStream};
use std::collections::HashSet;
use std::time::Duration;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// A store plus whatever must outlive it (the sled directory).
struct Fx {
    store: Store,
    _dir: Option<TempDir>,
}

fn memory() -> Fx {
    Fx {
        store: Store::memory(),
        _dir: None,
    }
}

fn sled() -> Fx {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_sled(dir.path(), 8 << 20).expect("open sled");
    Fx {
        store,
        _dir: Some(dir),
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::memory()).await
                }
            )*
        }
        mod sled {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::sled()).await
                }
            )*
        }
    };
}

conformance!(
    create_get_already_exists,
    update_compare_and_swap,
    delete_with_and_without_expected,
    list_prefix_order_and_pagination,
    list_at_past_revision,
    list_with_many_versions_per_key,
    future_revision_rejected,
    compaction_hides_old_revisions,
    watch_from_now_sees_only_new,
    watch_catch_up_then_live_with_concurrent_writers,
    watch_prefix_filtering,
    watched_writes_are_readable,
    delete_events_carry_prev,
    lagging_watcher_recovers_without_gaps,
    close_ends_watches,
    revisions_are_monotonic,
    concurrent_cas_loses_nothing,
    compactor_task_compacts_by_itself,
);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn next_event(w: &mut WatchStream) -> Event {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("watch event within 10s")
        .expect("stream not ended")
        .expect("event, not error")
}

async fn create_get_already_exists(fx: Fx) {
    let s = &fx.store;
    let kv = s.create("/a", b("1")).await.unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (1, 1));
    assert_eq!(s.get("/a").await.unwrap(), Some(kv.clone()));
    assert!(s.get("/missing").await.unwrap().is_none());
    match s.create("/a", b("2")).await {
        Err(StoreError::AlreadyExists { key }) => assert_eq!(key, "/a"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(s.get("/a").await.unwrap().unwrap().value, b("1"));
    assert_eq!(s.current_revision(), 1);
}

async fn update_compare_and_swap(fx: Fx) {
    let s = &fx.store;
    let v1 = s.create("/k", b("1")).await.unwrap();
    let v2 = s.update("/k", b("2"), v1.mod_revision).await.unwrap();
    assert_eq!(v2.create_revision, v1.create_revision);
    assert!(v2.mod_revision > v1.mod_revision);
    match s.update("/k", b("3"), v1.mod_revision).await {
        Err(StoreError::Conflict {
            key,
            expected,
            actual,
        }) => {
            assert_eq!(
                (key.as_str(), expected, actual),
                ("/k", v1.mod_revision, v2.mod_revision)
            );
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(matches!(
        s.update("/none", b("x"), 1).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(s.get("/k").await.unwrap(), Some(v2));
}

async fn delete_with_and_without_expected(fx: Fx) {
    let s = &fx.store;
    let a = s.create("/a", b("va")).await.unwrap();
    s.create("/b", b("vb")).await.unwrap();
    assert!(matches!(
        s.delete("/a", Some(a.mod_revision + 100)).await,
        Err(StoreError::Conflict { .. })
    ));
    let gone = s.delete("/a", Some(a.mod_revision)).await.unwrap();
    assert_eq!(gone.value, b("va"));
    assert_eq!(gone.create_revision, a.create_revision);
    assert_eq!(gone.mod_revision, s.current_revision());
    assert!(s.get("/a").await.unwrap().is_none());
    assert!(matches!(
        s.delete("/a", None).await,
        Err(StoreError::NotFound { .. })
    ));
    let gone_b = s.delete("/b", None).await.unwrap();
    assert_eq!(gone_b.value, b("vb"));
    assert_eq!(s.count("/").await.unwrap(), 0);
    // A key can be created again after deletion, with a fresh create revision.
    let again = s.create("/a", b("new")).await.unwrap();
    assert_eq!(again.create_revision, again.mod_revision);
    assert!(again.create_revision > gone.mod_revision);
}

async fn list_prefix_order_and_pagination(fx: Fx) {
    let s = &fx.store;
    for k in ["/a/3", "/a/1", "/b/1", "/a/2", "/a", "/a/10"] {
        s.create(k, b(k)).await.unwrap();
    }
    let all = s.list("/a/", None, 0, None).await.unwrap();
    let keys: Vec<_> = all.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/a/1", "/a/10", "/a/2", "/a/3"]);
    assert!(!all.more);
    assert_eq!(all.remaining, 0);
    assert_eq!(all.revision, s.current_revision());
    assert_eq!(s.count("/a/").await.unwrap(), 4);
    assert_eq!(s.count("").await.unwrap(), 6);

    let p1 = s.list("/a/", None, 2, None).await.unwrap();
    assert_eq!(
        p1.kvs.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(),
        ["/a/1", "/a/10"]
    );
    assert!(p1.more);
    assert_eq!(p1.remaining, 2);
    // A write between pages must not show up in a page read at the first page's revision.
    s.create("/a/11", b("late")).await.unwrap();
    let last = p1.kvs.last().unwrap().key.clone();
    let p2 = s
        .list("/a/", Some(&last), 2, Some(p1.revision))
        .await
        .unwrap();
    assert_eq!(
        p2.kvs.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(),
        ["/a/2", "/a/3"]
    );
    assert!(!p2.more);
    assert_eq!(p2.revision, p1.revision);
    // start_after below the prefix starts at the prefix.
    let p = s.list("/a/", Some("/0"), 1, None).await.unwrap();
    assert_eq!(p.kvs[0].key, "/a/1");
}

async fn list_at_past_revision(fx: Fx) {
    let s = &fx.store;
    let x1 = s.create("/x/1", b("old")).await.unwrap();
    s.create("/x/2", b("two")).await.unwrap();
    let snap = s.current_revision();
    s.update("/x/1", b("new"), x1.mod_revision).await.unwrap();
    s.delete("/x/2", None).await.unwrap();
    s.create("/x/3", b("three")).await.unwrap();

    let past = s.list("/x/", None, 0, Some(snap)).await.unwrap();
    assert_eq!(past.revision, snap);
    let got: Vec<_> = past
        .kvs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone()))
        .collect();
    assert_eq!(got, [("/x/1", b("old")), ("/x/2", b("two"))]);
    assert_eq!(past.kvs[0].mod_revision, x1.mod_revision);

    let paged = s.list("/x/", Some("/x/1"), 1, Some(snap)).await.unwrap();
    assert_eq!(paged.kvs.len(), 1);
    assert_eq!(paged.kvs[0].key, "/x/2");

    let now = s.list("/x/", None, 0, None).await.unwrap();
    let got: Vec<_> = now
        .kvs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone()))
        .collect();
    assert_eq!(got, [("/x/1", b("new")), ("/x/3", b("three"))]);
    assert!(s.list("/x/", None, 0, Some(1)).await.unwrap().kvs.len() == 1);
}

/// Keys with many retained versions next to keys with one, a deleted and a re-created key:
/// a list at every revision sees each key as it was then, in order, and pages the same way.
async fn list_with_many_versions_per_key(fx: Fx) {
    let s = &fx.store;
    let mut expected: Vec<(Revision, Vec<(String, Bytes)>)> = vec![];
    let mut now: std::collections::BTreeMap<String, Bytes> = Default::default();
    let mut snapshot = |now: &std::collections::BTreeMap<String, Bytes>, rev: Revision| {
        expected.push((
            rev,
            now.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ));
    };
    s.create("/v/a", b("a0")).await.unwrap();
    now.insert("/v/a".to_string(), b("a0"));
    let mut a = s.get("/v/a").await.unwrap().unwrap().mod_revision;
    s.create("/v/b", b("b0")).await.unwrap();
    now.insert("/v/b".to_string(), b("b0"));
    let gone = s.create("/v/c", b("c0")).await.unwrap();
    now.insert("/v/c".to_string(), b("c0"));
    snapshot(&now, s.current_revision());
    for i in 1..=30 {
        let v = b(&format!("a{i}"));
        a = s.update("/v/a", v.clone(), a).await.unwrap().mod_revision;
        now.insert("/v/a".to_string(), v);
        if i == 5 {
            s.delete("/v/c", Some(gone.mod_revision)).await.unwrap();
            now.remove("/v/c");
        }
        if i == 20 {
            s.create("/v/c", b("c1")).await.unwrap();
            now.insert("/v/c".to_string(), b("c1"));
        }
        snapshot(&now, s.current_revision());
    }
    s.create("/v/d", b("d0")).await.unwrap();
    s.create("/w/outside", b("x")).await.unwrap();
    for (rev, want) in &expected {
        let got = s.list("/v/", None, 0, Some(*rev)).await.unwrap();
        let got: Vec<(String, Bytes)> = got.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
        assert_eq!(&got, want, "list at revision {rev}");
        // One object per page walks the same objects.
        let mut paged = vec![];
        let mut after: Option<String> = None;
        loop {
            let p = s
                .list("/v/", after.as_deref(), 1, Some(*rev))
                .await
                .unwrap();
            paged.extend(p.kvs.iter().map(|kv| (kv.key.clone(), kv.value.clone())));
            after = p.kvs.last().map(|kv| kv.key.clone());
            if !p.more {
                break;
            }
        }
        assert_eq!(&paged, want, "paged list at revision {rev}");
    }
    let latest = s.list("/v/", None, 0, None).await.unwrap();
    let keys: Vec<_> = latest.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/v/a", "/v/b", "/v/c", "/v/d"]);
    assert_eq!(latest.kvs[0].value, b("a30"));
    assert_eq!(latest.kvs[0].mod_revision, a);
}

async fn future_revision_rejected(fx: Fx) {
    let s = &fx.store;
    s.create("/a", b("1")).await.unwrap();
    let cur = s.current_revision();
    match s.list("/", None, 0, Some(cur + 1)).await {
        Err(StoreError::FutureRevision { requested, current }) => {
            assert_eq!((requested, current), (cur + 1, cur))
        }
        Err(e) => panic!("expected FutureRevision, got {e:?}"),
        Ok(_) => panic!("expected FutureRevision, got a list"),
    }
    assert!(matches!(
        s.compact(cur + 5).await,
        Err(StoreError::FutureRevision { .. })
    ));
}

async fn compaction_hides_old_revisions(fx: Fx) {
    let s = &fx.store;
    let mut kv = s.create("/c/a", b("0")).await.unwrap();
    for i in 1..10 {
        kv = s
            .update("/c/a", b(&i.to_string()), kv.mod_revision)
            .await
            .unwrap();
    }
    s.create("/c/b", b("b")).await.unwrap();
    s.create("/c/gone", b("g")).await.unwrap();
    s.delete("/c/gone", None).await.unwrap();
    let at = s.current_revision();
    s.update("/c/a", b("after"), kv.mod_revision).await.unwrap();
    let before = s.list("/c/", None, 0, Some(at)).await.unwrap().kvs;

    s.compact(at).await.unwrap();
    assert_eq!(s.compacted_revision(), at);
    assert!(matches!(
        s.list("/c/", None, 0, Some(at - 1)).await,
        Err(StoreError::Compacted { .. })
    ));
    assert!(
        matches!(s.watch("/c/", at - 1), Err(StoreError::Compacted { requested, compacted }) if requested == at - 1 && compacted == at)
    );
    // The state at the compacted revision is intact, and so is everything after it.
    assert_eq!(s.list("/c/", None, 0, Some(at)).await.unwrap().kvs, before);
    assert_eq!(s.get("/c/a").await.unwrap().unwrap().value, b("after"));
    let mut w = s.watch("/c/", at).unwrap();
    let ev = next_event(&mut w).await;
    assert_eq!(ev.kv.value, b("after"));
    assert_eq!(ev.prev.unwrap().value, b("9"));
    // Compacting to an older revision is a no-op.
    s.compact(1).await.unwrap();
    assert_eq!(s.compacted_revision(), at);
    let cur = s.current_revision();
    s.compact(cur).await.unwrap();
    assert_eq!(s.list("/c/", None, 0, None).await.unwrap().kvs.len(), 2);
}

async fn watch_from_now_sees_only_new(fx: Fx) {
    let s = &fx.store;
    s.create("/w/old", b("o")).await.unwrap();
    let mut w = s.watch("/w/", 0).unwrap();
    let kv = s.create("/w/new", b("n")).await.unwrap();
    let ev = next_event(&mut w).await;
    assert_eq!(ev.kind, EventKind::Put);
    assert_eq!(ev.kv, kv);
    assert!(ev.prev.is_none());
}

async fn watch_catch_up_then_live_with_concurrent_writers(fx: Fx) {
    let s = fx.store.clone();
    for i in 0..40 {
        s.create(&format!("/r/pre{i}"), b("x")).await.unwrap();
    }
    let from: Revision = 10;
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    s.create(&format!("/r/t{t}-{i}"), b("y")).await.unwrap();
                }
            })
        })
        .collect();
    // Start watching while writers are running.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut w = s.watch("/r/", from).unwrap();
    for h in writers {
        h.await.unwrap();
    }
    let end = s.current_revision();
    assert_eq!(end, 240);
    let mut expect = from + 1;
    while expect <= end {
        let ev = next_event(&mut w).await;
        assert_eq!(ev.kv.mod_revision, expect, "gap or duplicate in watch");
        expect += 1;
    }
    // And it keeps following live.
    s.create("/r/last", b("z")).await.unwrap();
    assert_eq!(next_event(&mut w).await.kv.key, "/r/last");
}

/// What a watcher is told about can be read at once: a client that gets an event and then
/// reads or updates the object must find it, however the threads are scheduled.
async fn watched_writes_are_readable(fx: Fx) {
    let s = fx.store.clone();
    let mut w = s.watch("/seen/", 0).unwrap();
    let writers: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    s.create(&format!("/seen/t{t}-{i}"), b("v")).await.unwrap();
                }
            })
        })
        .collect();
    for _ in 0..800 {
        let ev = next_event(&mut w).await;
        assert!(
            s.current_revision() >= ev.kv.mod_revision,
            "event at {} delivered while the current revision is {}",
            ev.kv.mod_revision,
            s.current_revision()
        );
        let got = s.get(&ev.kv.key).await.unwrap();
        assert!(
            got.is_some(),
            "{} was watched but cannot be read",
            ev.kv.key
        );
    }
    for h in writers {
        h.await.unwrap();
    }
}

async fn watch_prefix_filtering(fx: Fx) {
    let s = &fx.store;
    let mut live = s.watch("/a/", 0).unwrap();
    for k in ["/a/1", "/b/1", "/a/2", "/ab", "/a"] {
        s.create(k, b(k)).await.unwrap();
    }
    assert_eq!(next_event(&mut live).await.kv.key, "/a/1");
    assert_eq!(next_event(&mut live).await.kv.key, "/a/2");
    s.create("/a/3", b("3")).await.unwrap();
    assert_eq!(next_event(&mut live).await.kv.key, "/a/3");
    // Same filtering during catch-up from the log.
    let mut past = s.watch("/a/", 1).unwrap();
    assert_eq!(next_event(&mut past).await.kv.key, "/a/2");
    assert_eq!(next_event(&mut past).await.kv.key, "/a/3");
}

async fn delete_events_carry_prev(fx: Fx) {
    let s = &fx.store;
    // Watching from 0 means "from now", so replay from a real revision.
    s.create("/other", b("o")).await.unwrap();
    let start = s.current_revision();
    let mut live = s.watch("/d/", 0).unwrap();
    let c = s.create("/d/k", b("1")).await.unwrap();
    let u = s.update("/d/k", b("2"), c.mod_revision).await.unwrap();
    let d = s.delete("/d/k", None).await.unwrap();
    let mut replay = s.watch("/d/", start).unwrap();
    for w in [&mut live, &mut replay] {
        let e1 = next_event(w).await;
        assert_eq!(
            (e1.kind, e1.kv.clone(), e1.prev),
            (EventKind::Put, c.clone(), None)
        );
        let e2 = next_event(w).await;
        assert_eq!(
            (e2.kind, e2.kv.clone(), e2.prev),
            (EventKind::Put, u.clone(), Some(c.clone()))
        );
        let e3 = next_event(w).await;
        assert_eq!(e3.kind, EventKind::Delete);
        assert_eq!(e3.kv, d);
        assert_eq!(e3.kv.value, b("2"));
        assert_eq!(e3.prev, Some(u.clone()));
    }
}

async fn lagging_watcher_recovers_without_gaps(fx: Fx) {
    let s = fx.store.clone();
    let mut w = s.watch("/lag/", 0).unwrap();
    // Far more events than the live buffer holds, written while the watcher is not polled.
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..400 {
                    s.create(&format!("/lag/{t}/{i}"), Bytes::new())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    for expect in 1..=3200 {
        assert_eq!(next_event(&mut w).await.kv.mod_revision, expect);
    }
}

async fn close_ends_watches(fx: Fx) {
    let s = &fx.store;
    let mut w = s.watch("", 0).unwrap();
    s.create("/x", b("1")).await.unwrap();
    s.close().await.unwrap();
    assert_eq!(next_event(&mut w).await.kv.key, "/x");
    let end = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap();
    assert!(matches!(end, Some(Err(StoreError::Closed)) | None));
    assert!(matches!(
        s.create("/y", b("1")).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(s.get("/x").await, Err(StoreError::Closed)));
}

async fn revisions_are_monotonic(fx: Fx) {
    let s = &fx.store;
    let mut last = s.current_revision();
    let kv = s.create("/m", b("0")).await.unwrap();
    assert_eq!(kv.mod_revision, last + 1);
    last = kv.mod_revision;
    let mut cur = kv;
    for i in 0..20 {
        cur = s
            .update("/m", b(&i.to_string()), cur.mod_revision)
            .await
            .unwrap();
        assert_eq!(cur.mod_revision, last + 1);
        last = cur.mod_revision;
        assert_eq!(s.current_revision(), last);
    }
    // Failed writes take no revision.
    let _ = s.create("/m", b("dup")).await.unwrap_err();
    assert_eq!(s.delete("/m", None).await.unwrap().mod_revision, last + 1);
}

async fn concurrent_cas_loses_nothing(fx: Fx) {
    let s = fx.store.clone();
    s.create("/counter", b("0")).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut revs = Vec::new();
                for _ in 0..5 {
                    loop {
                        let kv = s.get("/counter").await.unwrap().unwrap();
                        let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                        match s
                            .update("/counter", b(&(n + 1).to_string()), kv.mod_revision)
                            .await
                        {
                            Ok(new) => {
                                revs.push(new.mod_revision);
                                break;
                            }
                            Err(StoreError::Conflict { .. }) => continue,
                            Err(e) => panic!("unexpected error {e}"),
                        }
                    }
                }
                revs
            })
        })
        .collect();
    let mut all = HashSet::new();
    for t in tasks {
        for r in t.await.unwrap() {
            assert!(all.insert(r), "revision {r} handed out twice");
        }
    }
    assert_eq!(all.len(), 100);
    let kv = s.get("/counter").await.unwrap().unwrap();
    assert_eq!(kv.value, b("100"));
    assert_eq!(kv.mod_revision, s.current_revision());
}

async fn compactor_task_compacts_by_itself(fx: Fx) {
    let s = &fx.store;
    let mut kv = s.create("/ct", b("0")).await.unwrap();
    for i in 0..20 {
        kv = s
            .update("/ct", b(&i.to_string()), kv.mod_revision)
            .await
            .unwrap();
    }
    let cancel = CancellationToken::new();
    let task = s.spawn_compactor(Duration::from_millis(10), Duration::ZERO, cancel.clone());
    let target = s.current_revision();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while s.compacted_revision() < target {
        assert!(
            tokio::time::Instant::now() < deadline,
            "compactor did not compact"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(matches!(
        s.list("/", None, 0, Some(target - 1)).await,
        Err(StoreError::Compacted { .. })
    ));
    assert_eq!(s.get("/ct").await.unwrap().unwrap().value, b("19"));
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_reopen_keeps_data_revision_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let (rev, compacted) = {
        let s = Store::open_sled(dir.path(), 8 << 20).unwrap();
        let a = s.create("/p/a", b("1")).await.unwrap();
        s.create("/p/b", b("2")).await.unwrap();
        s.update("/p/a", b("3"), a.mod_revision).await.unwrap();
        s.compact(3).await.unwrap();
        s.delete("/p/b", None).await.unwrap();
        s.close().await.unwrap();
        (s.current_revision(), s.compacted_revision())
    };
    assert_eq!((rev, compacted), (4, 3));
    let s = Store::open_sled(dir.path(), 8 << 20).unwrap();
    assert_eq!(s.current_revision(), rev);
    assert_eq!(s.compacted_revision(), compacted);
    assert_eq!(s.get("/p/a").await.unwrap().unwrap().value, b("3"));
    assert!(s.get("/p/b").await.unwrap().is_none());
    assert_eq!(s.list("/p/", None, 0, Some(3)).await.unwrap().kvs.len(), 2);
    assert!(matches!(
        s.list("/p/", None, 0, Some(2)).await,
        Err(StoreError::Compacted { .. })
    ));
    assert_eq!(
        s.create("/p/c", b("4")).await.unwrap().mod_revision,
        rev + 1
    );
    // Compacting everything away leaves no log records; the head must still survive reopen.
    s.compact(rev + 1).await.unwrap();
    s.close().await.unwrap();
    drop(s);
    let s = Store::open_sled(dir.path(), 8 << 20).unwrap();
    assert_eq!(
        (s.current_revision(), s.compacted_revision()),
        (rev + 1, rev + 1)
    );
    assert_eq!(s.count("/p/").await.unwrap(), 2);
}

const CRASH_DIR_ENV: &str = "K1S_STORE_CRASH_DIR";
const CRASH_ROUND_ENV: &str = "K1S_STORE_CRASH_ROUND";

/// Child half of the crash test: writes until killed, printing each acknowledged write.
/// Does nothing when run as a normal test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    use std::io::Write;
    let (Ok(dir), Ok(round)) = (std::env::var(CRASH_DIR_ENV), std::env::var(CRASH_ROUND_ENV))
    else {
        return;
    };
    let s = Store::open_sled(std::path::Path::new(&dir), 4 << 20).expect("child open");
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            let round = round.clone();
            tokio::spawn(async move {
                for i in 0..100_000 {
                    let key = format!("/crash/{round}/{t}/{i}");
                    let kv = s
                        .create(&key, Bytes::from(vec![b'v'; 64 + i % 512]))
                        .await
                        .expect("child write");
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "ACK {key} {}", kv.mod_revision);
                    let _ = out.flush();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

fn random_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.finish() % n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_survives_kill_9() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let mut total = 0;
    for round in 0..10 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CRASH_DIR_ENV, dir.path())
            .env(CRASH_ROUND_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let acked: Arc<Mutex<Vec<(String, Revision)>>> = Arc::default();
        let stdout = child.stdout.take().unwrap();
        let sink = acked.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                // The first line shares its start with the harness's "test crash_child ... ".
                if let Some((_, rest)) = line.split_once("ACK ") {
                    let (k, r) = rest.split_once(' ').unwrap();
                    sink.lock()
                        .unwrap()
                        .push((k.to_string(), r.parse().unwrap()));
                }
            }
        });
        // Kill at a random moment once the child is writing.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while acked.lock().unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "crash child never acknowledged a write"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(random_below(300))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();

        let s = Store::open_sled(dir.path(), 4 << 20).unwrap();
        let acked = acked.lock().unwrap().clone();
        let max_rev = acked.iter().map(|(_, r)| *r).max().unwrap_or(0);
        assert!(
            s.current_revision() >= max_rev,
            "round {round}: revision went back"
        );
        for (key, rev) in &acked {
            let kv = s
                .get(key)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: acknowledged {key} lost"));
            assert_eq!(kv.mod_revision, *rev);
        }
        // The recovered store is consistent: the log replays into exactly the current state.
        let listed = s.list("/crash/", None, 0, None).await.unwrap().kvs.len() as u64;
        assert_eq!(listed, s.count("/crash/").await.unwrap());
        assert_eq!(listed, s.current_revision(), "every revision is one create");
        let mut w = s.watch("/crash/", 1).unwrap();
        for _ in 0..listed.min(50) - 1 {
            next_event(&mut w).await;
        }
        total += acked.len();
        s.close().await.unwrap();
    }
    assert!(total > 0);
}
