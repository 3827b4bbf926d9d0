//! Role-based access control, as kube-apiserver's RBAC authorizer: Roles, ClusterRoles,
//! RoleBindings and ClusterRoleBindings decide every request, answered from an in-memory
//! snapshot (`snapshot`) that a watch over the in-process client keeps current (`sync`).
//! `system:masters` may do anything without a binding, as upstream's privileged group.
//! Writes of roles and bindings are checked for escalation (`escalation`), and the default
//! policy (`policy`) is written at start (`bootstrap`).
//!
//! The authorizer is called on every request: it must never block or do I/O.

pub mod bootstrap;
pub mod escalation;
pub mod policy;
pub mod rules;
pub mod snapshot;
mod sync;

use super::auth::{Attributes, Authorizer, GrantWrite, RuleSet, UserInfo, MASTERS};
use crate::registry::ApiError;
use snapshot::Cache;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long the server waits for the first snapshot before giving up on starting.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    #[error("writing the default RBAC policy: {0}")]
    Bootstrap(#[from] bootstrap::BootstrapError),
    #[error("the RBAC cache did not sync within {0:?}")]
    NotSynced(Duration),
}

/// The RBAC authorizer. Cheap to share; the snapshot inside is swapped on every change.
#[derive(Debug, Default)]
pub struct Rbac {
    cache: Arc<Cache>,
}

impl Rbac {
    pub fn new() -> Arc<Rbac> {
        Arc::new(Rbac::default())
    }

    /// The current snapshot (for benchmarks and tests).
    pub fn snapshot(&self) -> Arc<snapshot::Snapshot> {
        self.cache.snapshot()
    }

    /// Write the default policy through `client` (which must be in system:masters), start
    /// keeping the snapshot current, and return once it reflects the cluster.
    pub async fn start(
        &self,
        client: &kube::Client,
        tasks: &mut JoinSet<()>,
        cancel: &CancellationToken,
    ) -> Result<(), RbacError> {
        bootstrap::reconcile(client).await?;
        tasks.spawn(sync::run(
            client.clone(),
            self.cache.clone(),
            cancel.clone(),
        ));
        tokio::time::timeout(SYNC_TIMEOUT, self.cache.synced())
            .await
            .map_err(|_| RbacError::NotSynced(SYNC_TIMEOUT))
    }
}

fn is_master(user: &UserInfo) -> bool {
    user.groups.iter().any(|g| g == MASTERS)
}

impl Authorizer for Rbac {
    fn authorize(&self, user: &UserInfo, attrs: &Attributes<'_>) -> Result<(), String> {
        if is_master(user) {
            return Ok(());
        }
        self.cache.snapshot().authorize(user, attrs).map(drop)
    }

    fn rules_for(&self, user: &UserInfo, namespace: Option<&str>) -> RuleSet {
        let (rules, errors) = self.cache.snapshot().rules_for(user, namespace);
        RuleSet { rules, errors }
    }

    fn check_grant(&self, user: &UserInfo, write: &GrantWrite<'_>) -> Result<(), ApiError> {
        escalation::check(&self.cache.snapshot(), user, write)
    }
}
