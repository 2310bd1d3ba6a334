//! Transactions: optimistic commits with put-if-absent as the only lock.
//!
//! A commit writes its data files and manifests under unique names, then creates the next
//! version file with `PutMode::Create`. Losing that race is not an error by itself: the
//! committer reloads the table, checks the versions committed since its base against what
//! it is doing (the matrix below), and either rebases (builds its version on top of the new
//! one and tries again, after a jittered exponential backoff, a bounded number of times) or
//! fails with [`Error::Conflict`].
//!
//! # Conflict matrix
//!
//! Rows: the change being committed. Columns: a change committed concurrently (between the
//! committer's base version and the version it finally commits on top of).
//!
//! | mine \ theirs              | append | overwrite (table) | overwrite (partitions P) | rewrite (removes R') | row delta (on files D') | schema / spec change | properties |
//! |----------------------------|--------|-------------------|--------------------------|----------------------|-------------------------|----------------------|------------|
//! | **append**                 | rebase | rebase            | rebase                   | rebase               | rebase                  | conflict             | rebase     |
//! | **overwrite (table)**      | conflict | conflict        | conflict                 | conflict             | conflict                | conflict             | rebase     |
//! | **overwrite (partitions P)** | conflict if it added to P | conflict | conflict if P ∩ P' | conflict if it removed from P | conflict if D' in P | conflict | rebase     |
//! | **rewrite (removes R)**    | rebase | conflict          | conflict if R ∩ removed  | conflict if R ∩ R'   | conflict if R ∩ D'      | conflict             | rebase     |
//! | **row delta (on files D)** | rebase | conflict          | conflict if D ∩ removed  | conflict if D ∩ R'   | union²                  | conflict             | rebase     |
//! | **schema / spec change**   | rebase¹ | rebase¹          | rebase¹                  | rebase¹              | rebase¹                 | conflict             | rebase     |
//! | **properties (keys K)**    | rebase | rebase            | rebase                   | rebase               | rebase                  | rebase               | conflict if they changed K |
//! | **replace (definition and data)** | conflict | conflict   | conflict                 | conflict             | conflict                | conflict             | conflict   |
//!
//! ¹ A schema change that depends on the data (SET NOT NULL, which was checked against the
//! base's data) conflicts with any concurrent data change instead.
//!
//! ² Two row deltas on one file both commit when they delete different rows: the later one
//! writes the union of the vector committed meanwhile and its own positions. When any
//! position was deleted by both (two statements changed the same row), the later one
//! conflicts and runs again on the new version, so no update is lost.
//!
//! Reasons, briefly: appends read nothing, so they serialize after anything that keeps the
//! schema their files were written with. An overwrite replaces what it read, so any data
//! change to what it replaces invalidates it. A rewrite (DELETE, UPDATE, MERGE, compaction)
//! is valid exactly as long as every file it removes is still live with the deletion vector
//! it read; rows appended meanwhile are not in its files and survive it. A row delta is
//! valid as long as its files are live and no row it deletes was deleted meanwhile. A
//! rewrite or row delta that loses a file or row to another commit conflicts: re-running
//! the statement on the new version gives the right answer, so those conflicts are marked
//! retryable.
//!
//! A committer whose create succeeded but reported an error recognises its own commit by its
//! commit id when it retries, and does not commit twice.

mod build;

use std::collections::BTreeMap;
use std::time::Duration;

use object_store::ObjectStoreExt;
use rand::Rng;
use roaring::RoaringTreemap;
use tarn_spec::{ChangeType, MetadataUpdate, Operation, PartitionSpec, TableMetadata, Version};

use crate::error::{Error, ErrorKind, Result};
use crate::log;
use crate::manifest::DataFile;
use crate::table::Table;
use crate::writer::UnstoredFile;

/// Table property set by the last commit a table receives before it is renamed: a writer
/// that finds it stops instead of committing to the old name.
pub const RENAMED_TO_PROPERTY: &str = "tarn.renamed-to";

/// What a commit changes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Change {
    /// Add data files.
    Append { files: Vec<DataFile> },
    /// Replace data: the whole table, or the partitions the new files fall in.
    Overwrite {
        files: Vec<DataFile>,
        scope: OverwriteScope,
    },
    /// Remove some live files and add others (DELETE, UPDATE, MERGE in copy-on-write mode,
    /// compaction). `removed` are the files as the base version has them (their deletion
    /// vectors included).
    Rewrite {
        removed: Vec<DataFile>,
        added: Vec<DataFile>,
        operation: Operation,
    },
    /// Delete rows of live files by position, and add files (DELETE, UPDATE, MERGE in
    /// merge-on-read mode). `deletes` holds, per data file as the base version has it, the
    /// positions this change deletes.
    RowDelta {
        deletes: Vec<(DataFile, RoaringTreemap)>,
        added: Vec<DataFile>,
        operation: Operation,
    },
    /// Give the table a new definition and new data (CREATE OR REPLACE TABLE, RESTORE):
    /// `updates` set the schema, partition spec and properties (see [`Table::replacement`]
    /// and [`Table::restore`]), and `files` become the table's only data files: files
    /// written for the new definition, or an earlier version's files, each of a spec the
    /// table has. Any commit made since the base version makes it conflict.
    Replace {
        updates: Vec<MetadataUpdate>,
        files: Vec<DataFile>,
    },
    /// Change the schema, partition spec or properties.
    Metadata {
        updates: Vec<MetadataUpdate>,
        data_dependent: bool,
    },
}

/// What an overwrite replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverwriteScope {
    /// Every data file of the table.
    Table,
    /// Files of the default partition spec in the partitions the new files fall in; other
    /// partitions and files of older specs are kept.
    Partitions,
}

impl Change {
    fn operation(&self) -> Operation {
        match self {
            Change::Append { .. } => Operation::Append,
            Change::Overwrite { .. } | Change::Replace { .. } => Operation::Overwrite,
            Change::Rewrite { operation, .. } | Change::RowDelta { operation, .. } => *operation,
            Change::Metadata { updates, .. } => {
                if updates.iter().all(|u| {
                    matches!(
                        u,
                        MetadataUpdate::SetProperties(_) | MetadataUpdate::RemoveProperties(_)
                    )
                }) {
                    Operation::SetProperties
                } else {
                    Operation::SchemaChange
                }
            }
        }
    }

    fn writes_data(&self) -> bool {
        !matches!(self, Change::Metadata { .. })
    }
}

/// The longest application id an [`AppCommit`] takes, in characters.
pub const MAX_APP_ID_CHARS: usize = 200;

/// A commit stamped by an application with a sequence number, for exactly-once writes.
///
/// A job that writes batch `n` stamps its commit `AppCommit { app_id, sequence: n }`. The
/// table keeps, for every application, the last sequence number committed (in the property
/// `tarn.app-seq.<app_id>`, carried by every later version, so it survives the expiry of
/// old snapshots). A commit whose number is not greater than that is refused with
/// [`Error::AlreadyCommitted`], before it writes anything and again on every attempt, so a
/// job that crashed after its commit and before it heard of it can run the batch again
/// safely: the retry is refused and nothing is duplicated. [`Table::app_sequence`] tells a
/// restarted job where to resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCommit {
    pub app_id: String,
    pub sequence: u64,
}

/// The table property holding an application's last committed sequence number.
pub fn app_sequence_property(app_id: &str) -> String {
    format!("{}{app_id}", crate::properties::APP_SEQUENCE_PREFIX)
}

impl AppCommit {
    /// Whether `app_id` can name an application: 1 to [`MAX_APP_ID_CHARS`] characters.
    pub fn is_valid_id(app_id: &str) -> bool {
        !app_id.is_empty() && app_id.chars().count() <= MAX_APP_ID_CHARS
    }

    /// Refuses this commit if `table` already holds its sequence number or a later one
    /// ([`Error::AlreadyCommitted`]): a writer can ask before it writes any data.
    pub fn check(&self, table: &Table) -> Result<()> {
        match table.app_sequence(&self.app_id) {
            Some(last) if last >= self.sequence => Err(Error::AlreadyCommitted {
                app_id: self.app_id.clone(),
                sequence: self.sequence,
                last,
            }),
            _ => Ok(()),
        }
    }
}

/// What a commit carries besides its [`Change`].
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// Recorded in the snapshot summary's `extra`.
    pub summary: BTreeMap<String, String>,
    /// Stamps the commit for exactly-once writes.
    pub app: Option<AppCommit>,
    /// The rows the commit changes, written by the committer as data files of the table's
    /// current schema and default spec, by kind of change (FORMAT.md §8.8). Given for row-level
    /// changes whose added and removed files cannot tell the change feed what happened; it
    /// then is the commit's whole change feed.
    pub change_log: Vec<(ChangeType, DataFile)>,
    /// Data files of the change not stored yet ([`crate::DataFileWriter::finish_unstored`]):
    /// the commit stores them together with its metadata objects, before its version file.
    /// Each must be a file the change or its change log adds.
    pub unstored: Vec<UnstoredFile>,
    /// Whether the data files the change and its change log add were written for this
    /// commit alone. A commit that fails then deletes the ones already stored, as it
    /// deletes the objects it stored itself, unless its version may have landed. Leave it
    /// unset when the same files may be given to another commit.
    pub owns_files: bool,
}

fn validate_change_log(
    base: &Table,
    change: &Change,
    change_log: &[(ChangeType, DataFile)],
) -> Result<()> {
    if change_log.is_empty() {
        return Ok(());
    }
    if !matches!(change, Change::Rewrite { .. } | Change::RowDelta { .. }) {
        return Err(Error::invalid(
            "change log",
            "only row-level changes (rewrites and row deltas) record their changed rows",
        ));
    }
    let spec = base.metadata().default_spec();
    if let Some((_, file)) = change_log
        .iter()
        .find(|(_, f)| f.spec_id != spec.id() || f.partition.len() != spec.fields().len())
    {
        return Err(Error::invalid(
            "change log",
            format!(
                "'{}' was not written with the table's default partition spec",
                file.path
            ),
        ));
    }
    Ok(())
}

/// How often and how patiently a commit retries after losing the race.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 100,
            min_backoff: Duration::from_millis(2),
            max_backoff: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// Full jitter: a random wait up to `min_backoff * 2^attempt`, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .min_backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_backoff);
        let nanos = rand::rng().random_range(0..=cap.as_nanos() as u64);
        Duration::from_nanos(nanos)
    }
}

impl Table {
    /// Commits `change` on top of this version (rebasing onto newer versions where the
    /// conflict matrix allows) and returns the table at the new version.
    pub async fn commit(&self, change: Change) -> Result<Table> {
        self.commit_with_summary(change, BTreeMap::new()).await
    }

    /// [`Table::commit`], recording `extra` in the snapshot summary.
    pub async fn commit_with_summary(
        &self,
        change: Change,
        extra: BTreeMap<String, String>,
    ) -> Result<Table> {
        self.commit_stamped(change, extra, None).await
    }

    /// [`Table::commit_with_summary`], stamped by an application for exactly-once writes
    /// (see [`AppCommit`]) when `app` is given.
    pub async fn commit_stamped(
        &self,
        change: Change,
        extra: BTreeMap<String, String>,
        app: Option<AppCommit>,
    ) -> Result<Table> {
        let options = CommitOptions {
            summary: extra,
            app,
            ..CommitOptions::default()
        };
        self.commit_with(change, options).await
    }

    /// [`Table::commit`] with everything a commit can carry besides its change. A staged
    /// table (see [`Table::stage`]) is created first.
    pub async fn commit_with(&self, change: Change, options: CommitOptions) -> Result<Table> {
        // A replacement commits its data in place of the table it replaces.
        if let Some(replaced) = self.replaced() {
            let Change::Append { files } = change else {
                return Err(Error::invalid(
                    "replacement",
                    "a table's replacement commits its new data as one append",
                ));
            };
            let replace = Change::Replace {
                updates: replaced.updates.clone(),
                files,
            };
            return Box::pin(replaced.base.commit_with(replace, options)).await;
        }
        let owned = match options.owns_files {
            true => stored_files(&change, &options.change_log, &options.unstored),
            false => Vec::new(),
        };
        let outcome = match self.create_staged().await {
            Ok(base) => base.commit_options(change, options).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &outcome
            && e.kind() != ErrorKind::CommitStateUnknown
        {
            build::remove_objects(self, &owned).await;
        }
        outcome
    }

    /// [`Self::commit_with`], less deleting the files it owns when it fails.
    async fn commit_options(&self, change: Change, options: CommitOptions) -> Result<Table> {
        let CommitOptions {
            summary: extra,
            app,
            change_log,
            unstored,
            owns_files: _,
        } = options;
        let written_for = written_for(self, &change)?;
        validate(self, &change, &written_for)?;
        validate_change_log(self, &change, &change_log)?;
        validate_unstored(&change, &change_log, &unstored)?;
        if let Some(app) = &app {
            if !AppCommit::is_valid_id(&app.app_id) {
                return Err(Error::invalid(
                    "application id",
                    format!("it must have between 1 and {MAX_APP_ID_CHARS} characters"),
                ));
            }
            app.check(self)?;
        }
        let commit_id = self.env().next_id();
        let mut prepared =
            build::prepare(self, &change, &written_for, &change_log, unstored).await?;
        // Whether an attempt's version may have landed though it did not answer so: until
        // that is settled, what the attempts stored of the change must stay.
        let mut in_doubt = false;
        let outcome = self
            .attempt_commits(
                &change,
                &mut prepared,
                &commit_id,
                &extra,
                app.as_ref(),
                &mut in_doubt,
            )
            .await;
        match outcome {
            Err(source) if in_doubt => Err(Error::CommitStateUnknown {
                source: Box::new(source),
            }),
            Err(e) => {
                prepared.remove_stored(self).await;
                Err(e)
            }
            landed => landed,
        }
    }

    /// The attempts of [`Self::commit_with`]: each builds the next version on the newest one
    /// and tries to create it, until one lands, the change conflicts or the attempts run out.
    async fn attempt_commits(
        &self,
        change: &Change,
        prepared: &mut build::Prepared,
        commit_id: &str,
        extra: &BTreeMap<String, String>,
        app: Option<&AppCommit>,
        in_doubt: &mut bool,
    ) -> Result<Table> {
        let mut current = self.clone();
        let policy = self.retry_policy().clone();
        let mut last_error = None;
        // The attempt before, when its create failed: settled once this attempt knows
        // whether that create landed after all.
        let mut unsettled: Option<Unsettled> = None;
        // The commits up to this version were checked against the change already.
        let mut checked = self.version();
        // The version the last attempt that tried to create one built on: its create, if it
        // failed, may have landed at the version after it all the same.
        let mut created_on: Option<Version> = None;
        for attempt in 1..=policy.max_attempts {
            if attempt > 1 {
                tokio::time::sleep(policy.backoff(attempt)).await;
                current = current.refresh().await?;
                if current.metadata().table_uuid() != self.metadata().table_uuid() {
                    // The table was dropped and another created under its name.
                    return Err(Error::TableGone {
                        table: self.location().url().to_string(),
                    });
                }
                // A create that timed out, or whose answer was lost and which object_store
                // asked again (hearing "already exists"), may have landed. Each attempt
                // looks only past the base of the one before: an earlier create landed by
                // now at a version an earlier look saw, or at that attempt's own version.
                if let Some(since) = created_on
                    && let Some(mine) = own_commit(since, &current, commit_id).await?
                {
                    log::write_hint(self.location(), mine).await;
                    return current.at_version(mine).await;
                }
                if let Some(before) = unsettled.take() {
                    before.settle(self, &current).await?;
                }
                *in_doubt = false;
            }
            if let Some(to) = current.metadata().properties().get(RENAMED_TO_PROPERTY) {
                return Err(Error::TableRenamed { to: to.clone() });
            }
            if crate::table::is_dropped(current.metadata()) {
                return Err(Error::TableDropped {
                    table: self.location().url().to_string(),
                });
            }
            if let Some(app) = app {
                // A commit of the same application landed meanwhile with this number or a
                // later one (this one's own was found above).
                app.check(&current)?;
            }
            let attempt = match build::next_metadata(
                self, checked, &current, change, prepared, commit_id, extra, app,
            )
            .await
            {
                Ok(attempt) => attempt,
                // The version this attempt builds on expired (snapshot expiry deleted its
                // objects) after it was loaded: build on the newest version instead.
                // Expiry never removes the newest version, so without a newer one the
                // objects are missing for another reason (a DROP under way, damage).
                Err(e @ Error::MissingFile { .. }) => {
                    let newer = current.refresh().await?;
                    if newer.version() <= current.version() {
                        return Err(e);
                    }
                    last_error = Some(e);
                    current = newer;
                    continue;
                }
                Err(e) => return Err(e),
            };
            checked = current.version();
            created_on = Some(current.version());
            let next = attempt.metadata;
            let version = next.version();
            let file = log::version_file(version);
            match self
                .location()
                .put_if_absent(&file, next.to_json().into())
                .await
            {
                Ok(Some(tag)) => {
                    // Landed: from here on, an error must leave every object in place.
                    *in_doubt = true;
                    // The hint goes out with the check, one round trip for both: should the
                    // version be taken back, a reader that finds the hint naming it lists
                    // the versions instead, as it does after a DROP.
                    let (base_current, ()) = futures::join!(
                        base_is_current(&current),
                        log::write_hint(self.location(), version)
                    );
                    if !base_current? {
                        let mine = self.location().path(&file);
                        *in_doubt = self.location().store().delete(&mine).await.is_err();
                        return Err(Error::TableGone {
                            table: self.location().url().to_string(),
                        });
                    }
                    build::remove_objects(&current, &attempt.superseded).await;
                    let committed = current.with_metadata(next, tag);
                    committed.remember_committed();
                    return Ok(committed);
                }
                Ok(None) => {
                    unsettled = Some(Unsettled {
                        base: current.clone(),
                        written: attempt.written,
                        taken: Some(version),
                    });
                    last_error = None;
                }
                // The create may or may not have happened; the next attempt finds out by
                // looking for this commit's id.
                Err(e) if e.kind() == ErrorKind::Unavailable => {
                    *in_doubt = true;
                    unsettled = Some(Unsettled {
                        base: current.clone(),
                        written: attempt.written,
                        taken: None,
                    });
                    last_error = Some(e);
                }
                Err(e) => {
                    build::remove_objects(&current, &attempt.written).await;
                    return Err(e);
                }
            }
        }
        // The last attempt's version went to another commit: its own objects go too.
        if let Some(last) = unsettled.filter(|last| last.taken.is_some()) {
            build::remove_objects(&last.base, &last.written).await;
        }
        Err(last_error.unwrap_or(Error::CommitRetriesExhausted {
            attempts: policy.max_attempts,
        }))
    }

    /// Brings the table back to `version` in a new version, as Delta's RESTORE and Iceberg's
    /// rollback do: the schema, partition spec and properties that version had (those only
    /// tarn sets stay as they are now), and its data files with their deletion vectors, by
    /// reference: nothing is rewritten. The versions between stay readable. A commit to the
    /// table meanwhile makes it conflict (it is a [`Change::Replace`]). `extra` goes to the
    /// snapshot summary. Restoring the current version commits nothing.
    pub async fn restore(
        &self,
        version: Version,
        extra: BTreeMap<String, String>,
    ) -> Result<Table> {
        if version == self.version() {
            return Ok(self.clone());
        }
        let then = self.at_version(version).await?;
        let (old, now) = (then.metadata(), self.metadata());
        let mut updates = Vec::new();
        if old.current_schema().id() != now.current_schema().id() {
            updates.push(MetadataUpdate::SetCurrentSchema(old.current_schema().id()));
        }
        if old.default_spec().id() != now.default_spec().id() {
            updates.push(MetadataUpdate::SetDefaultSpec(old.default_spec().id()));
        }
        updates.extend(now.replace_properties(old.properties(), crate::properties::set_by_tarn));
        let files = then
            .plan_files(&crate::scan::Predicate::True)
            .await?
            .data_files();
        self.commit_with_summary(Change::Replace { updates, files }, extra)
            .await
    }

    /// Appends data files.
    pub async fn append(&self, files: Vec<DataFile>) -> Result<Table> {
        self.commit(Change::Append { files }).await
    }

    /// Writes `batches` as new data files and appends them in one commit, which stores the
    /// small ones with its metadata.
    pub async fn append_batches(
        &self,
        batches: impl IntoIterator<Item = arrow::array::RecordBatch>,
    ) -> Result<Table> {
        let mut writer = self.writer()?;
        for batch in batches {
            writer.write(&batch).await?;
        }
        let (files, unstored) = writer.finish_unstored().await?;
        let options = CommitOptions {
            unstored,
            ..CommitOptions::default()
        };
        self.commit_with(Change::Append { files }, options).await
    }
}

/// After creating the version after `base`: whether `base`'s file is still the one the
/// commit was built on. DROP TABLE deletes version files oldest first, so a version this
/// commit could create (its number was free) means the base is gone too, unless the table
/// was created again and has reached that version; the entity tag tells the two apart.
/// Then the new version must not stay, and nothing was committed.
async fn base_is_current(base: &Table) -> Result<bool> {
    let file = log::version_file(base.version());
    Ok(match base.location().head_tag(&file).await? {
        None => false,
        Some(tag) => match (base.version_tag(), tag) {
            (Some(known), Some(now)) => known == now,
            _ => true,
        },
    })
}

/// An attempt whose create failed, as the next attempt finds it.
struct Unsettled {
    /// The version the attempt built on.
    base: Table,
    /// The objects it wrote for its version alone (manifest list, rewritten manifests).
    written: Vec<String>,
    /// The version it tried to create, when the store said the version was there already.
    taken: Option<Version>,
}

impl Unsettled {
    /// The attempt did not land (`current` holds no commit of its id): removes what it
    /// wrote, and fails when what held its version was no other writer's commit.
    async fn settle(self, table: &Table, current: &Table) -> Result<()> {
        build::remove_objects(&self.base, &self.written).await;
        let Some(version) = self.taken.filter(|v| current.version() < *v) else {
            return Ok(());
        };
        // A DROP TABLE deleting the versions, newest last, shows this picture for a moment:
        // if what was in the way is gone, so may be the version `current` was read from, or
        // another table created under the name may hold that number now (a refresh that
        // finds the same number does not read the version again).
        let file = log::version_file(version);
        let path = table.location().path(&file);
        if let Err(object_store::Error::NotFound { .. }) =
            table.location().store().head(&path).await
            && !base_is_current(current).await?
        {
            return Err(Error::TableGone {
                table: table.location().url().to_string(),
            });
        }
        Err(Error::VersionBlocked {
            path: table.location().describe(&file),
            reason: "creating it reports that it exists, yet it cannot be read as a version".into(),
        })
    }
}

/// The version at which this committer's own commit landed, if it did.
async fn own_commit(since: Version, current: &Table, commit_id: &str) -> Result<Option<Version>> {
    Ok(build::snapshots_since(since, current)
        .await?
        .iter()
        .find(|s| s.commit_id.as_deref() == Some(commit_id))
        .map(|s| s.version))
}

/// The files `change` and its change log add that are stored already: every one but the
/// `unstored`, which the commit stores itself.
fn stored_files(
    change: &Change,
    change_log: &[(ChangeType, DataFile)],
    unstored: &[UnstoredFile],
) -> Vec<String> {
    let unstored: std::collections::HashSet<&str> =
        unstored.iter().map(|file| file.path.as_str()).collect();
    // A file that loses all its rows can be the log of their deletion itself: it is the
    // table's, not the commit's.
    let taken: std::collections::HashSet<&str> = match change {
        Change::Rewrite { removed, .. } => removed.iter().map(|f| f.path.as_str()).collect(),
        Change::RowDelta { deletes, .. } => deletes.iter().map(|(f, _)| f.path.as_str()).collect(),
        _ => std::collections::HashSet::new(),
    };
    added_files(change)
        .iter()
        .chain(change_log.iter().map(|(_, file)| file))
        .map(|file| file.path.as_str())
        .filter(|path| !unstored.contains(path) && !taken.contains(path))
        .map(str::to_string)
        .collect()
}

/// The data files `change` adds.
fn added_files(change: &Change) -> &[DataFile] {
    match change {
        Change::Append { files }
        | Change::Overwrite { files, .. }
        | Change::Replace { files, .. } => files,
        Change::Rewrite { added, .. } | Change::RowDelta { added, .. } => added,
        Change::Metadata { .. } => &[],
    }
}

/// Every unstored file is one the change adds: the commit stores only what it refers to.
fn validate_unstored(
    change: &Change,
    change_log: &[(ChangeType, DataFile)],
    unstored: &[UnstoredFile],
) -> Result<()> {
    if unstored.is_empty() {
        return Ok(());
    }
    let paths: std::collections::HashSet<&str> = added_files(change)
        .iter()
        .chain(change_log.iter().map(|(_, file)| file))
        .map(|file| file.path.as_str())
        .collect();
    match unstored
        .iter()
        .find(|file| !paths.contains(file.path.as_str()))
    {
        Some(file) => Err(Error::invalid(
            "unstored data file",
            format!("'{}' is not a file the change adds", file.path),
        )),
        None => Ok(()),
    }
}

/// The metadata the files `change` adds are written for: the base version's, or for a
/// replacement the definition it gives the table.
fn written_for<'a>(
    base: &'a Table,
    change: &Change,
) -> Result<std::borrow::Cow<'a, TableMetadata>> {
    use std::borrow::Cow;
    match change {
        Change::Replace { updates, .. } => Ok(Cow::Owned(
            base.metadata()
                .with_updates(updates)
                .map_err(Error::InvalidMetadata)?,
        )),
        _ => Ok(Cow::Borrowed(base.metadata())),
    }
}

/// Checks `change` against `base`, whose files are written for `written_for` (see
/// [`written_for`]).
fn validate(base: &Table, change: &Change, written_for: &TableMetadata) -> Result<()> {
    if let Change::Metadata { updates, .. } | Change::Replace { updates, .. } = change {
        let mut properties = base.metadata().properties().clone();
        for update in updates {
            match update {
                MetadataUpdate::SetProperties(p) => {
                    properties.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())))
                }
                MetadataUpdate::RemoveProperties(keys) => {
                    for key in keys {
                        properties.remove(key);
                    }
                }
                _ => {}
            }
        }
        crate::properties::validate(&properties)?;
    }
    let spec: &PartitionSpec = written_for.default_spec();
    let added = added_files(change);
    if let Change::RowDelta { deletes, .. } = change {
        for (file, positions) in deletes {
            if positions.max().is_some_and(|p| p >= file.record_count) {
                return Err(Error::invalid(
                    "row delta",
                    format!(
                        "a deleted position of '{}' is past its {} rows",
                        file.path, file.record_count
                    ),
                ));
            }
        }
    }
    for file in added {
        // A replacement may bring back files of the table's earlier specs (a restore).
        if let Change::Replace { .. } = change {
            let fits = (written_for.spec(file.spec_id))
                .is_some_and(|spec| spec.fields().len() == file.partition.len());
            if !fits {
                return Err(Error::invalid(
                    "data file",
                    format!(
                        "'{}' names partition spec {}, which the table does not have",
                        file.path, file.spec_id
                    ),
                ));
            }
            continue;
        }
        if file.spec_id != spec.id() || file.partition.len() != spec.fields().len() {
            return Err(Error::invalid(
                "data file",
                format!(
                    "'{}' was written for partition spec {}, but the table's default spec is {}",
                    file.path,
                    file.spec_id,
                    spec.id()
                ),
            ));
        }
    }
    Ok(())
}
