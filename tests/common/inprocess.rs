//! An in-process cluster for controller tests: the API `k1s::server::inprocess` builds on a
//! memory store, one set of shared informers for the controllers a test spawns (as the server
//! shares them), and the cancellation token those controllers take. Dropping it stops them.
//! It never starts a server process; `TestServer` does that.

use k1s::controllers::informers::Informers;
use k1s::server::inprocess::InProcessApi;
use k1s::store::Store;
use tokio_util::sync::CancellationToken;

pub struct Cluster {
    pub client: kube::Client,
    pub informers: Informers,
    pub cancel: CancellationToken,
}

impl Cluster {
    /// A fresh API with the `default` namespace and no controllers yet.
    pub async fn new() -> Cluster {
        Cluster::with_namespaces(&["default"]).await
    }

    /// A fresh API with the namespaces in `names`.
    pub async fn with_namespaces(names: &[&str]) -> Cluster {
        let api = InProcessApi::builder(Store::memory())
            .namespaces(names)
            .build()
            .await
            .expect("building the in-process api");
        Cluster::on(api.client)
    }

    /// Informers and a token for controllers on an API the caller already has.
    pub fn on(client: kube::Client) -> Cluster {
        let cancel = CancellationToken::new();
        Cluster {
            informers: Informers::new(client.clone(), cancel.clone()),
            client,
            cancel,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
