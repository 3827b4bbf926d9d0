use super::*;
use crate::server::inprocess::InProcessApi;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{DeleteParams, PostParams};
use serde_json::json;
use std::time::Duration;

async fn client() -> Client {
    InProcessApi::memory().await.unwrap().client
}

fn map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"}})).unwrap()
}

fn named(name: &str, rv: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {
        "name": name, "namespace": "default", "resourceVersion": rv}}))
    .unwrap()
}

/// The next change, sync markers included.
async fn next_raw<K>(s: &mut (impl Stream<Item = Change<K>> + Unpin)) -> Change<K> {
    tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("a change within 10s")
        .expect("the stream still open")
}

/// The next applied or deleted object.
async fn next<K>(s: &mut (impl Stream<Item = Change<K>> + Unpin)) -> Change<K> {
    loop {
        let c = next_raw(s).await;
        if !matches!(c, Change::Synced) {
            return c;
        }
    }
}

fn name_of<K: Kind>(c: &Change<K>) -> (bool, String) {
    let applied = matches!(c, Change::Applied(_));
    let obj = c.object().expect("an object, not a marker");
    (applied, obj.meta().name.clone().unwrap_or_default())
}

#[tokio::test]
async fn synced_follows_the_listed_objects_for_early_and_late_subscribers() {
    let client = client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for n in ["a", "b"] {
        api.create(&PostParams::default(), &map(n)).await.unwrap();
    }
    let cancel = CancellationToken::new();
    let informers = Informers::new(client, cancel.clone());
    let informer = informers.get::<ConfigMap>();
    let names = |mut s: std::pin::Pin<Box<dyn Stream<Item = Change<ConfigMap>> + Send>>| async move {
        let mut seen = vec![];
        loop {
            match next_raw(&mut s).await {
                Change::Synced => break,
                c => seen.push(name_of(&c).1),
            }
        }
        seen.sort();
        seen
    };
    let early = names(Box::pin(informer.changes())).await;
    informer.store().wait_until_ready().await.unwrap();
    let late = names(Box::pin(informer.changes())).await;
    // kube-root-ca.crt may be published meanwhile: only our own maps are compared.
    let ours = |v: Vec<String>| v.into_iter().filter(|n| n.len() == 1).collect::<Vec<_>>();
    assert_eq!(ours(early), vec!["a", "b"]);
    assert_eq!(ours(late), vec!["a", "b"]);
    cancel.cancel();
}

#[tokio::test]
async fn subscribers_share_one_cache_and_see_applies_and_deletes() {
    let client = client().await;
    let cancel = CancellationToken::new();
    let informers = Informers::new(client.clone(), cancel.clone());
    let (first, second) = (informers.get::<ConfigMap>(), informers.get::<ConfigMap>());
    let mut a = Box::pin(first.changes());
    let mut b = Box::pin(second.changes());
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &map("one"))
        .await
        .unwrap();
    let (ca, cb) = (next(&mut a).await, next(&mut b).await);
    assert_eq!(name_of(&ca), (true, "one".into()));
    // Both subscribers hold the cache's own copy, not one each.
    let cached = first.store().get(&ObjectRef::new("one").within("default"));
    let cached = cached.expect("in the shared cache");
    assert!(Arc::ptr_eq(ca.object().unwrap(), &cached));
    assert!(Arc::ptr_eq(cb.object().unwrap(), &cached));
    assert!(cached.metadata.managed_fields.is_none());

    api.delete("one", &DeleteParams::default()).await.unwrap();
    assert_eq!(name_of(&next(&mut a).await), (false, "one".into()));
    assert_eq!(name_of(&next(&mut b).await), (false, "one".into()));
    assert!(second
        .store()
        .get(&ObjectRef::new("one").within("default"))
        .is_none());
    cancel.cancel();
}

#[tokio::test]
async fn a_late_subscriber_first_gets_what_the_cache_holds() {
    let client = client().await;
    let cancel = CancellationToken::new();
    let informers = Informers::new(client.clone(), cancel.clone());
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &map("early"))
        .await
        .unwrap();
    let store = informers.get::<ConfigMap>().store();
    store.wait_until_ready().await.unwrap();
    let mut late = Box::pin(informers.get::<ConfigMap>().subscribe());
    let first = tokio::time::timeout(Duration::from_secs(10), late.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("early"));
    api.create(&PostParams::default(), &map("later"))
        .await
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), late.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.metadata.name.as_deref(), Some("later"));
    cancel.cancel();
}

#[tokio::test]
async fn applied_only_streams_skip_deletes() {
    let client = client().await;
    let cancel = CancellationToken::new();
    let informers = Informers::new(client.clone(), cancel.clone());
    let mut applied = Box::pin(informers.get::<ConfigMap>().subscribe_applied());
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &map("a")).await.unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    api.create(&PostParams::default(), &map("b")).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let o = tokio::time::timeout(Duration::from_secs(10), applied.next())
            .await
            .unwrap()
            .unwrap();
        seen.push(o.metadata.name.clone().unwrap());
    }
    assert_eq!(seen, ["a", "b"]);
    cancel.cancel();
}

#[tokio::test]
async fn cancellation_ends_the_watch_and_the_streams() {
    let client = client().await;
    let cancel = CancellationToken::new();
    let informers = Informers::new(client, cancel.clone());
    let mut pods = Box::pin(informers.get::<Pod>().subscribe());
    informers
        .get::<Pod>()
        .store()
        .wait_until_ready()
        .await
        .unwrap();
    cancel.cancel();
    let end = tokio::time::timeout(Duration::from_secs(10), pods.next()).await;
    assert!(matches!(end, Ok(None)), "the stream ends on cancellation");
}

#[tokio::test]
async fn each_server_has_its_own_informers() {
    let (one, two) = (client().await, client().await);
    let cancel = CancellationToken::new();
    let (i1, i2) = (
        Informers::new(one.clone(), cancel.clone()),
        Informers::new(two, cancel.clone()),
    );
    let api: Api<ConfigMap> = Api::namespaced(one, "default");
    api.create(&PostParams::default(), &map("only-one"))
        .await
        .unwrap();
    let (s1, s2) = (i1.get::<ConfigMap>().store(), i2.get::<ConfigMap>().store());
    s1.wait_until_ready().await.unwrap();
    s2.wait_until_ready().await.unwrap();
    let key = ObjectRef::new("only-one").within("default");
    tokio::time::timeout(Duration::from_secs(10), async {
        while s1.get(&key).is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert!(s2.get(&key).is_none());
    cancel.cancel();
}

/// What a subscriber was told by a finished list, sorted; the list's end marker comes last.
fn told_after_list(rx: &mut mpsc::UnboundedReceiver<Change<ConfigMap>>) -> Vec<(bool, String)> {
    let mut told = Vec::new();
    let mut synced = false;
    while let Ok(c) = rx.try_recv() {
        assert!(!synced, "the sync marker comes last");
        match c {
            Change::Synced => synced = true,
            c => told.push(name_of(&c)),
        }
    }
    assert!(synced, "a finished list is marked");
    told.sort();
    told
}

/// A re-list tells the subscribers what vanished meanwhile as deleted, and everything that
/// is there again.
#[test]
fn a_relist_reports_vanished_objects_as_deleted() {
    let mut writer = Writer::<ConfigMap>::default();
    let shared = Shared {
        store: writer.as_reader(),
        fanout: Mutex::new(Fanout {
            subscribers: Vec::new(),
            synced: false,
        }),
    };
    let (tx, mut rx) = mpsc::unbounded();
    lock(&shared.fanout).subscribers.push(tx);
    for ev in [
        watcher::Event::Init,
        watcher::Event::InitApply(named("a", "1")),
        watcher::Event::InitApply(named("b", "2")),
        watcher::Event::InitDone,
    ] {
        shared.apply(&mut writer, ev);
    }
    let told = told_after_list(&mut rx);
    assert_eq!(told, [(true, "a".into()), (true, "b".into())]);

    for ev in [
        watcher::Event::Init,
        watcher::Event::InitApply(named("b", "3")),
        watcher::Event::InitApply(named("c", "4")),
    ] {
        shared.apply(&mut writer, ev);
    }
    assert!(
        rx.try_recv().is_err(),
        "nothing is told before the list is done"
    );
    shared.apply(&mut writer, watcher::Event::InitDone);
    let told = told_after_list(&mut rx);
    assert_eq!(
        told,
        [(false, "a".into()), (true, "b".into()), (true, "c".into())]
    );
    assert_eq!(shared.store.state().len(), 2);
}
