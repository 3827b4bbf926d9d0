//! The manifests directory, `<data-dir>/server/manifests`, as k3s has it: the bundled
//! manifests are staged there at start (`stage`), and every `.yaml`/`.yml`/`.json` file there
//! is applied with server-side apply and kept applied (`controller`), each recorded in an
//! `Addon` (`addon`). `files` reads the directory, `decode` turns a file into objects,
//! `apply` talks to the API, `watch` notices changes. The server calls `start`. Like every
//! controller it reaches the cluster only through the API; it never writes a file other than
//! the bundled ones and never deletes one that `--disable` does not name.

pub mod addon;
pub mod apply;
pub mod controller;
pub mod decode;
pub mod files;
pub mod stage;
pub mod watch;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use controller::{Controller, Outcome};
pub use stage::TemplateVars;

/// How often every file is applied again even if unchanged (objects edited by hand are put
/// back to what the file says).
pub const RESYNC: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct Config {
    /// `<data-dir>/server/manifests`.
    pub dir: PathBuf,
    pub vars: TemplateVars,
    /// `--disable` names: bundled manifests not staged, and files of that name removed with
    /// their objects.
    pub disables: BTreeSet<String>,
    pub resync: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Stage(#[from] stage::StageError),
    #[error("creating the addons.k1s.io custom resource definition: {0}")]
    Crd(kube::Error),
}

/// Stage the bundled manifests, create the Addon CRD, remove what `--disable` names and apply
/// the bundled files, all before returning, so the cluster is whole (the default
/// StorageClass exists) when the server reports ready; then watch the directory in a task,
/// whose first pass applies the rest. The user's own files are applied in that task, never
/// before readiness: there may be many, and a broken one must not hold the server back.
pub async fn start(
    client: kube::Client,
    cfg: Config,
    tasks: &mut JoinSet<()>,
    cancel: CancellationToken,
) -> Result<(), DeployError> {
    let started = Instant::now();
    let staged = stage::stage(&cfg.dir, &cfg.vars, &cfg.disables)?;
    addon::Addons::new(client.clone())
        .ensure_crd()
        .await
        .map_err(DeployError::Crd)?;
    let mut c = Controller::new(client, cfg.dir.clone(), cfg.disables.clone(), cfg.resync);
    c.disable_leftovers().await;
    c.remove_disabled().await;
    c.pass_files(&staged).await;
    tracing::info!(
        dir = %cfg.dir.display(),
        bundled = staged.len(),
        elapsed = ?started.elapsed(),
        "manifests directory staged and bundled manifests applied"
    );
    tasks.spawn(c.run(cancel));
    Ok(())
}
