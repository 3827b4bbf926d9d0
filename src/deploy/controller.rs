//! The manifests directory's control loop: a pass looks at every manifest, applies those that
//! are new or changed (or all of them on the periodic resync), prunes the objects a file no
//! longer declares, records each file in its Addon, and removes what `--disable` names. A
//! pass runs within a moment of an inotify event, every few seconds for files that failed
//! (backing off), and every `resync`. One broken file never stops the others: its error goes
//! to the log, to a Warning Event on its Addon and to the Addon's status. Deleting a file
//! leaves its objects and its Addon, as k3s does. All cluster access is through the API.

use super::addon::Addons;
use super::apply::{apply_order, Applier, ObjectRef};
use super::decode::{decode, DecodeError};
use super::files::{self, addon_name, Entry, Stamp};
use super::watch::{Changes, DirWatch};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long to let a burst of events settle (editors write, rename and chmod in steps).
const SETTLE: Duration = Duration::from_millis(30);
/// Polling interval when inotify is not available.
const POLL: Duration = Duration::from_secs(1);
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// What the controller remembers of a file between passes.
#[derive(Debug, Clone)]
struct Seen {
    stamp: Stamp,
    checksum: String,
    ok: bool,
    failures: u32,
    retry_at: Option<Instant>,
}

/// The outcome of applying one file.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Unchanged,
    Applied { objects: usize, pruned: usize },
    Failed(String),
    Disabled,
}

pub struct Controller {
    dir: PathBuf,
    disables: BTreeSet<String>,
    resync: Duration,
    applier: Applier,
    addons: Addons,
    seen: HashMap<String, Seen>,
}

pub fn checksum(content: &[u8]) -> String {
    Sha256::digest(content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn union(a: &[ObjectRef], b: &[ObjectRef]) -> Vec<ObjectRef> {
    let mut out: Vec<ObjectRef> = a.to_vec();
    for r in b {
        if !out.iter().any(|o| o.identity() == r.identity()) {
            out.push(r.clone());
        }
    }
    out
}

impl Controller {
    pub fn new(
        client: kube::Client,
        dir: PathBuf,
        disables: BTreeSet<String>,
        resync: Duration,
    ) -> Controller {
        Controller {
            dir,
            disables,
            resync,
            applier: Applier::new(client.clone()),
            addons: Addons::new(client),
            seen: HashMap::new(),
        }
    }

    /// One pass over the directory. `force` re-applies unchanged files; `dirty` names files
    /// known to have changed (their stamp is not trusted). With `only_dirty` (a pass on
    /// inotify events) other files are left for their own events, except failed ones due for
    /// a retry: a changed stamp without an event is a file still being written.
    pub async fn pass(
        &mut self,
        force: bool,
        dirty: &BTreeSet<String>,
        only_dirty: bool,
    ) -> Vec<(String, Outcome)> {
        let (entries, skips) = match files::list(&self.dir) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read the manifests directory");
                return vec![];
            }
        };
        let now = Instant::now();
        let listed: BTreeSet<String> = entries.iter().map(|e| e.file.clone()).collect();
        let mut out = vec![];
        for entry in entries {
            if self.disables.contains(addon_name(&entry.file)) {
                out.push((entry.file.clone(), self.disable_file(&entry).await));
                continue;
            }
            if files::is_skipped(&entry.file, &skips) {
                continue;
            }
            // a `.skip` file added or removed changes its manifest's fate
            let changed = dirty.contains(&entry.file)
                || dirty.contains(&format!("{}.skip", entry.file))
                || dirty.contains(&format!("{}.skip", addon_name(&entry.file)));
            if !force && !changed {
                let seen = self.seen.get(&entry.file);
                let due = seen.is_some_and(|s| s.retry_at.is_some_and(|t| t <= now));
                if only_dirty && !due {
                    continue;
                }
                if let Some(s) = seen {
                    if s.stamp == entry.stamp && (s.ok || !due) {
                        continue;
                    }
                }
            }
            let outcome = self.deploy(&entry, force).await;
            out.push((entry.file.clone(), outcome));
        }
        // a file removed and written again later is looked at afresh
        self.seen.retain(|f, _| listed.contains(f));
        out
    }

    /// Remove the files `--disable` names, with their objects (at start, before readiness).
    pub async fn remove_disabled(&mut self) {
        let Ok((entries, _)) = files::list(&self.dir) else {
            return;
        };
        for entry in entries {
            if self.disables.contains(addon_name(&entry.file)) {
                self.disable_file(&entry).await;
            }
        }
    }

    /// Apply the named files only (the bundled ones at start, before the API is ready).
    pub async fn pass_files(&mut self, paths: &[PathBuf]) -> Vec<(String, Outcome)> {
        let (entries, skips) = match files::list(&self.dir) {
            Ok(l) => l,
            Err(_) => return vec![],
        };
        let mut out = vec![];
        for entry in entries.iter().filter(|e| paths.contains(&e.path)) {
            if !files::is_skipped(&entry.file, &skips) {
                out.push((entry.file.clone(), self.deploy(entry, true).await));
            }
        }
        out
    }

    /// The earliest moment a failed file is due for another try.
    fn next_retry(&self) -> Option<Instant> {
        self.seen.values().filter_map(|s| s.retry_at).min()
    }

    fn record(&mut self, entry: &Entry, checksum: String, error: Option<&str>) {
        let prev = self.seen.get(&entry.file);
        let failures = match error {
            None => 0,
            Some(_) => prev.map_or(0, |p| p.failures) + 1,
        };
        let retry_at = error.map(|_| {
            let backoff = RETRY_FIRST
                .saturating_mul(1u32 << (failures - 1).min(8))
                .min(RETRY_MAX);
            Instant::now() + backoff
        });
        self.seen.insert(
            entry.file.clone(),
            Seen {
                stamp: entry.stamp,
                checksum,
                ok: error.is_none(),
                failures,
                retry_at,
            },
        );
    }

    async fn deploy(&mut self, entry: &Entry, force: bool) -> Outcome {
        let path = entry.path.display().to_string();
        let name = addon_name(&entry.file).to_string();
        let content = match read_bounded(&entry.path) {
            Ok(c) => c,
            Err(e) => {
                // gone between listing and reading, or unreadable: the next event says which
                tracing::warn!(file = %path, error = %e, "cannot read manifest");
                self.record(entry, String::new(), Some("unreadable"));
                return Outcome::Failed(e.to_string());
            }
        };
        let sum = checksum(&content);
        if !force {
            if let Some(s) = self.seen.get(&entry.file) {
                if s.ok && s.checksum == sum {
                    self.record(entry, sum, None);
                    return Outcome::Unchanged;
                }
            }
        }
        // what the file applied before: read now, so pruning knows it
        let previous = match self.addons.get(&name).await {
            Ok(a) => a,
            Err(e) => return self.no_addon(entry, sum, &name, e).await,
        };
        let json = entry.file.to_ascii_lowercase().ends_with(".json");
        // parsing a large file takes a while: off the async threads
        let decoded = tokio::task::spawn_blocking(move || decode(&content, json))
            .await
            .unwrap_or_else(|e| Err(DecodeError::Panicked(e.to_string())))
            .map_err(|e| format!("parsing {path}: {e}"));
        let mut objects = match decoded {
            Ok(o) => o,
            Err(why) => {
                return self
                    .fail(entry, &name, sum, "ParseManifestFailed", why, None)
                    .await
            }
        };
        apply_order(&mut objects);
        let before: Vec<ObjectRef> = previous
            .as_ref()
            .map(|a| a.objects.clone())
            .unwrap_or_default();
        let mut applied = vec![];
        let mut errors = vec![];
        for obj in &objects {
            match self.applier.apply(obj).await {
                Ok(r) => applied.push(r),
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !errors.is_empty() {
            let why = format!("applying {path}: {}", errors.join("; "));
            let keep = union(&before, &applied);
            return self
                .fail(entry, &name, sum, "ApplyManifestFailed", why, Some(keep))
                .await;
        }
        // prune what the file declared before and no longer does
        let mut pruned = 0;
        for old in &before {
            if applied.iter().any(|a| a.identity() == old.identity()) {
                continue;
            }
            match self.applier.delete(old).await {
                Ok(()) => {
                    pruned += 1;
                    tracing::info!(file = %path, object = %old, "deleted an object no longer in the manifest");
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !errors.is_empty() {
            let why = format!("pruning {path}: {}", errors.join("; "));
            let keep = union(&applied, &before);
            return self
                .fail(entry, &name, sum, "ApplyManifestFailed", why, Some(keep))
                .await;
        }
        let created = previous.is_none();
        let addon = match previous {
            Some(a) => a,
            None => match self.addons.get_or_create(&name, &path, &sum).await {
                Ok(a) => a,
                Err(e) => return self.no_addon(entry, sum, &name, e).await,
            },
        };
        let changed = addon.checksum != sum || addon.source != path;
        let write = async {
            if changed {
                self.addons.set_spec(&name, &path, &sum).await?;
            }
            if addon.objects != applied || !addon.error.is_empty() {
                self.addons.set_status(&name, &applied, "").await?;
            }
            Ok::<_, kube::Error>(())
        };
        if let Err(e) = write.await {
            let why = format!("recording {path} in addon {name}: {e}");
            tracing::error!(file = %path, error = %why, "manifest applied, addon not updated");
            self.record(entry, sum, Some(&why));
            return Outcome::Failed(why);
        }
        if created || changed || pruned > 0 || !addon.error.is_empty() {
            tracing::info!(file = %path, objects = applied.len(), pruned, "applied manifest");
            let msg = format!("Applied manifest at {path:?}: {} objects", applied.len());
            self.addons
                .event(&addon, false, "AppliedManifest", msg)
                .await;
        }
        self.record(entry, sum, None);
        Outcome::Applied {
            objects: applied.len(),
            pruned,
        }
    }

    /// A file that failed: logged, a Warning Event on its Addon (created if need be), the
    /// error in the Addon's status (with `objects` when some were applied), a retry scheduled.
    async fn fail(
        &mut self,
        entry: &Entry,
        name: &str,
        sum: String,
        reason: &str,
        why: String,
        objects: Option<Vec<ObjectRef>>,
    ) -> Outcome {
        tracing::error!(file = %entry.path.display(), error = %why, "manifest not applied");
        let src = entry.path.display().to_string();
        // a new Addon records no checksum: nothing of the file has been applied whole
        let addon = match self.addons.get_or_create(name, &src, "").await {
            Ok(a) => a,
            Err(e) => return self.no_addon(entry, sum, name, e).await,
        };
        self.addons.event(&addon, true, reason, why.clone()).await;
        let objects = objects.unwrap_or_else(|| addon.objects.clone());
        if let Err(e) = self.addons.set_status(name, &objects, &why).await {
            tracing::warn!(addon = %name, error = %e, "cannot record the error in the addon");
        }
        if addon.source != src {
            let _ = self.addons.set_spec(name, &src, &addon.checksum).await;
        }
        self.record(entry, sum, Some(&why));
        Outcome::Failed(why)
    }

    /// The Addon cannot be read or written (an invalid name, the API refusing): log only.
    async fn no_addon(
        &mut self,
        entry: &Entry,
        sum: String,
        name: &str,
        e: kube::Error,
    ) -> Outcome {
        let why = format!("recording {} as addon {name}: {e}", entry.path.display());
        tracing::error!(file = %entry.path.display(), error = %why, "manifest not applied");
        self.record(entry, sum, Some(&why));
        Outcome::Failed(why)
    }

    /// `--disable NAME`: delete the objects the Addon recorded (and any the file declares),
    /// the file, then the Addon.
    async fn disable_file(&mut self, entry: &Entry) -> Outcome {
        let name = addon_name(&entry.file).to_string();
        let mut objects = match self.addons.get(&name).await {
            Ok(a) => a.map(|a| a.objects).unwrap_or_default(),
            Err(e) => return Outcome::Failed(format!("reading addon {name}: {e}")),
        };
        if let Ok(content) = std::fs::read(&entry.path) {
            let json = entry.file.to_ascii_lowercase().ends_with(".json");
            for obj in decode(&content, json).unwrap_or_default() {
                if let Ok(r) = self.applier.locate(&obj).await {
                    objects = union(&objects, &[r]);
                }
            }
        }
        if let Err(e) = self.remove(&name, &objects).await {
            tracing::error!(file = %entry.path.display(), error = %e, "cannot remove a disabled manifest's objects");
            return Outcome::Failed(e);
        }
        if let Err(e) = std::fs::remove_file(&entry.path) {
            tracing::error!(file = %entry.path.display(), error = %e, "cannot remove a disabled manifest");
            return Outcome::Failed(e.to_string());
        }
        self.seen.remove(&entry.file);
        tracing::info!(file = %entry.path.display(), objects = objects.len(), "removed disabled manifest and its objects");
        Outcome::Disabled
    }

    async fn remove(&self, name: &str, objects: &[ObjectRef]) -> Result<(), String> {
        for r in objects {
            self.applier.delete(r).await.map_err(|e| e.to_string())?;
        }
        self.addons
            .delete(name)
            .await
            .map_err(|e| format!("deleting addon {name}: {e}"))
    }

    /// Disabled names whose file is already gone but whose Addon is left (the file was
    /// removed by hand, or k1s stopped midway): remove the recorded objects and the Addon.
    pub async fn disable_leftovers(&self) {
        for name in &self.disables {
            let Ok(Some(addon)) = self.addons.get(name).await else {
                continue;
            };
            if !addon.source.is_empty() && Path::new(&addon.source).exists() {
                continue; // the pass removes it with its file
            }
            match self.remove(name, &addon.objects).await {
                Ok(()) => tracing::info!(addon = %name, "removed a disabled addon's objects"),
                Err(e) => {
                    tracing::error!(addon = %name, error = %e, "cannot remove a disabled addon")
                }
            }
        }
    }

    /// Run until cancelled: a pass on every change (settled), on retries, and every `resync`.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut watch = open_watch(&self.dir);
        let mut next_resync = Instant::now() + self.resync;
        self.pass(false, &BTreeSet::new(), false).await;
        loop {
            let mut wake = next_resync;
            if let Some(t) = self.next_retry() {
                wake = wake.min(t);
            }
            if watch.is_none() {
                wake = wake.min(Instant::now() + POLL);
            }
            let changes = tokio::select! {
                _ = cancel.cancelled() => return,
                c = next_change(watch.as_ref()) => Some(c),
                _ = tokio::time::sleep_until(wake.into()) => None,
            };
            let mut dirty = BTreeSet::new();
            let mut force = false;
            let mut only_dirty = false;
            match changes {
                Some(Ok(mut c)) => {
                    tokio::time::sleep(SETTLE).await;
                    if let Some(w) = watch.as_ref() {
                        w.drain(&mut c);
                    }
                    if c.gone {
                        tracing::warn!(dir = %self.dir.display(), "the manifests directory went away; polling");
                        watch = None;
                    }
                    only_dirty = !c.everything;
                    dirty = c.names;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "watching the manifests directory failed; polling");
                    watch = None;
                }
                None if Instant::now() >= next_resync => {
                    force = true;
                    next_resync = Instant::now() + self.resync;
                    if watch.is_none() {
                        watch = open_watch(&self.dir);
                    }
                }
                None => {}
            }
            if only_dirty
                && dirty.is_empty()
                && self.next_retry().is_none_or(|t| t > Instant::now())
            {
                continue; // only writes still open, or a directory's own events
            }
            self.pass(force, &dirty, only_dirty).await;
        }
    }
}

/// The file's bytes, but never more than one past the limit `decode` refuses, so a huge file
/// (or a link to one) costs no more memory than that.
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = vec![];
    std::fs::File::open(path)?
        .take(super::decode::MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

fn open_watch(dir: &Path) -> Option<DirWatch> {
    match DirWatch::new(dir) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the manifests directory; polling every second");
            None
        }
    }
}

async fn next_change(w: Option<&DirWatch>) -> std::io::Result<Changes> {
    match w {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}
