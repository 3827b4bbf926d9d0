//! Crash safety: kill -9 the server while clients write; after a restart every acknowledged
//! write is there and the store opens cleanly. Repeated several times on one data dir.

mod common;
use common::TestServer;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let mut s = TestServer::start();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    for round in 0..6 {
        let client = s.client().await;
        let api: Api<ConfigMap> = Api::namespaced(client, "default");
        let mut writers = vec![];
        for w in 0..8 {
            let api = api.clone();
            let acked = acked.clone();
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let mut cm = ConfigMap::default();
                    cm.metadata.name = Some(format!("r{round}-w{w}-{i}"));
                    cm.data = Some([("payload".to_string(), "x".repeat(512))].into());
                    match api.create(&PostParams::default(), &cm).await {
                        Ok(c) => acked.lock().unwrap().push(c.metadata.name.unwrap()),
                        Err(_) => return,
                    }
                }
            }));
        }
        // let the writers get going (however loaded the machine is), then kill mid-stream
        let before = acked.lock().unwrap().len();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while acked.lock().unwrap().len() < before + 20 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(37 * round as u64)).await;
        s.kill9();
        for w in writers {
            let _ = w.await;
        }
        s.spawn();
        let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
        let stored: std::collections::HashSet<String> = api
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        let acked = acked.lock().unwrap().clone();
        assert!(!acked.is_empty(), "writers made progress in round {round}");
        let missing: Vec<&String> = acked.iter().filter(|n| !stored.contains(*n)).collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} acknowledged writes lost, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
    }
}
