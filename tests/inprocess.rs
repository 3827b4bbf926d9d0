//! The in-process kube::Client (the router as a tower service): kube-runtime's watcher and
//! reflector against it, and the 410 paths after compaction.

use futures::StreamExt;
use k1s::server::inprocess::InProcessApi;
use k1s::store::Store;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};

async fn setup() -> (Store, kube::Client) {
    let api = InProcessApi::memory().await.unwrap();
    (api.store, api.client)
}

fn cm(name: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.into());
    c
}

#[tokio::test]
async fn reflector_in_process() {
    let (_store, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("before"))
        .await
        .unwrap();
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream =
        reflector(writer, watcher(api.clone(), watcher::Config::default())).applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(e) = stream.next().await {
            e.expect("event");
        }
    });
    for i in 0..10 {
        api.create(&PostParams::default(), &cm(&format!("c{i}")))
            .await
            .unwrap();
    }
    api.delete("c0", &Default::default()).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while reader.state().len() != 10 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(reader.state().len(), 10);
    assert!(reader
        .state()
        .iter()
        .all(|c| c.metadata.name.as_deref() != Some("c0")));
    task.abort();
}

#[tokio::test]
async fn compacted_revisions_get_410() {
    let (store, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..6 {
        api.create(&PostParams::default(), &cm(&format!("c{i}")))
            .await
            .unwrap();
    }
    let page = api.list(&ListParams::default().limit(2)).await.unwrap();
    let token = page.metadata.continue_.clone().unwrap();
    let old_rv = page.metadata.resource_version.clone().unwrap();
    api.create(&PostParams::default(), &cm("later"))
        .await
        .unwrap();
    store.compact(store.current_revision()).await.unwrap();
    // continue at a compacted revision: 410
    match api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
    {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 410, "{e:?}"),
        other => panic!("expected 410, got {other:?}"),
    }
    // watch from a compacted revision: 200 then an ERROR event carrying 410
    let mut w = api
        .watch(&WatchParams::default().timeout(2), &old_rv)
        .await
        .unwrap()
        .boxed();
    match w.next().await {
        Some(Ok(WatchEvent::Error(e))) => assert_eq!(e.code, 410),
        Some(Err(kube::Error::Api(e))) => assert_eq!(e.code, 410),
        other => panic!("expected an ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn bookmarks_and_initial_events() {
    let (_store, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
    // streaming list (sendInitialEvents) as watcher's streaming mode uses it
    let wp = WatchParams::streaming_lists().timeout(1);
    let mut w = api.watch(&wp, "").await.unwrap().boxed();
    let mut saw_added = false;
    let mut saw_end = false;
    while let Some(ev) = w.next().await {
        match ev.unwrap() {
            WatchEvent::Added(c) => saw_added |= c.metadata.name.as_deref() == Some("a"),
            WatchEvent::Bookmark(b) => {
                saw_end |= b
                    .metadata
                    .annotations
                    .contains_key("k8s.io/initial-events-end")
            }
            _ => {}
        }
        if saw_added && saw_end {
            break;
        }
    }
    assert!(saw_added && saw_end);
}

/// What an in-process component writes is managed, in managedFields, by the name its
/// User-Agent starts with, as for remote clients: `k1s` unless it names its own.
#[tokio::test]
async fn field_manager_from_the_component_agent() {
    let (_store, client) = setup().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut mine = cm("mine");
    mine.data = Some([("a".to_string(), "1".to_string())].into());
    let made = api.create(&PostParams::default(), &mine).await.unwrap();
    let managers = |c: &ConfigMap| -> Vec<String> {
        c.metadata
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|m| m.manager.clone())
            .collect()
    };
    assert_eq!(managers(&made), ["k1s"], "{made:?}");

    let cluster = InProcessApi::memory().await.unwrap();
    let service = k1s::client::in_process_service(cluster.api, k1s::client::server_identity());
    let kubelet = kube::Client::new(service.with_agent("kubelet"), "default");
    let ns: Api<Namespace> = Api::all(kubelet.clone());
    let made = ns
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                serde_json::json!({"metadata": {"name": "n", "labels": {"a": "b"}}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        made.metadata.managed_fields.unwrap()[0].manager.as_deref(),
        Some("kubelet")
    );
}
