//! The set of running log sources, kept in line with the configuration.
//!
//! Receives the configuration (at start and after each reload) and the sources' `Stopped`
//! events; emits started and stopped sources. A source whose jail and input are unchanged keeps
//! running through a reload (it only takes the new filter), so nothing is read twice. A source
//! that must go is asked to stop without waiting for it; one that must (re)start for the same
//! jail starts only once the old one has stopped, from the position the old one handed back.
//! Positions live with the running source; this keeps only those of stopped sources (and, at
//! start, the saved ones), for the next start. It never blocks the core.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::{Config, JailConfig, JailKind, Source};
use crate::filter::{Event, Stage};
use crate::source::SourceHandle;
use crate::source::files::{self, FileSource};
use crate::source::journal::{self, JournalSource};
use crate::state::Position;
use nftjail_core::jail::JailName;

/// How sources are run (settable for tests).
#[derive(Debug, Clone)]
pub struct SourceOptions {
    pub journalctl: PathBuf,
    pub poll_interval: Duration,
    pub max_line: usize,
}

impl Default for SourceOptions {
    fn default() -> SourceOptions {
        SourceOptions {
            journalctl: "journalctl".into(),
            poll_interval: Duration::from_secs(1),
            max_line: nftjail_core::filter::MAX_LINE,
        }
    }
}

/// A running source of one jail, and its filter stage.
pub struct RunningSource {
    pub id: u64,
    pub jail: JailName,
    /// What it reads: a reload keeps the source when this is unchanged.
    pub spec: Source,
    pub stage: Stage,
    handle: SourceHandle,
}

impl RunningSource {
    /// Asks the source to stop after its current round; its thread is reaped in the background
    /// and its `Stopped` event says when it is done.
    pub fn stop(self) {
        if let Some(thread) = self.handle.signal() {
            std::thread::Builder::new()
                .name("source-reaper".into())
                .spawn(move || {
                    let _ = thread.join();
                })
                .map(drop)
                .unwrap_or_else(|e| tracing::warn!(error = %e, "cannot reap a stopped source"));
        }
    }
}

/// Starts the source of one enabled log jail with an id of its own, resuming from `positions`
/// (the ones under its keys are used). `None` for a jail that reads no log, or when it cannot
/// start (logged).
fn start_source(
    jail: &JailConfig,
    id: u64,
    positions: &HashMap<String, Position>,
    events: &mpsc::Sender<Event>,
    options: &SourceOptions,
) -> Option<RunningSource> {
    let JailKind::Log { source, .. } = &jail.kind else {
        return None;
    };
    let (sink, stage) = crate::filter::stage(jail, id, events)?;
    let prefix = format!("{}:", jail.name);
    let started = match source {
        Source::Files {
            paths,
            poll_only,
            tail,
        } => {
            let saved = positions
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(k, p)| (k.clone(), p.clone()))
                .collect();
            let spec = FileSource {
                jail: jail.name.to_string(),
                patterns: paths.clone(),
                poll_only: *poll_only,
                poll_interval: options.poll_interval,
                max_line: options.max_line,
                tail: tail.clone(),
            };
            files::spawn(spec, saved, sink)
        }
        Source::Journal { matches, paths } => {
            let spec = JournalSource {
                jail: jail.name.to_string(),
                matches: matches.clone(),
                paths: paths.clone(),
                journalctl: options.journalctl.clone(),
                read_back: Some(Duration::from_secs(jail.policy.findtime)),
            };
            let cursor = match positions.get(&spec.key()) {
                Some(Position::Journal { cursor }) => Some(cursor.clone()),
                _ => None,
            };
            journal::spawn(spec, cursor, sink)
        }
    };
    match started {
        Ok(handle) => Some(RunningSource {
            id,
            jail: jail.name.clone(),
            spec: source.clone(),
            stage,
            handle,
        }),
        Err(e) => {
            tracing::error!(jail = %jail.name, error = %e, "cannot start the log source");
            None
        }
    }
}

/// Running and stopping sources.
pub struct Sources {
    running: Vec<RunningSource>,
    /// Sources asked to stop whose `Stopped` event has not arrived yet, by id.
    stopping: HashMap<u64, JailName>,
    /// Where stopped sources left off (at start: the saved positions), by position key.
    resume: HashMap<String, Position>,
    next_id: u64,
    events: mpsc::Sender<Event>,
    options: SourceOptions,
    /// The daemon is stopping: no source starts again.
    closing: bool,
}

impl Sources {
    pub fn new(
        saved: HashMap<String, Position>,
        events: mpsc::Sender<Event>,
        options: SourceOptions,
    ) -> Sources {
        Sources {
            running: Vec::new(),
            stopping: HashMap::new(),
            resume: saved,
            next_id: 1,
            events,
            options,
            closing: false,
        }
    }

    /// Brings the running sources in line with the enabled log jails of `config`.
    pub fn reconcile(&mut self, config: &Config) {
        let mut kept = Vec::with_capacity(self.running.len());
        for source in std::mem::take(&mut self.running) {
            match wanted(config, &source.jail) {
                Some((jail, spec)) if *spec == source.spec => {
                    source.stage.set_filter(jail);
                    kept.push(source);
                }
                _ => {
                    tracing::debug!(jail = %source.jail, id = source.id, "stopping a source");
                    self.stopping.insert(source.id, source.jail.clone());
                    source.stop();
                }
            }
        }
        self.running = kept;
        for jail in config.enabled() {
            self.start_if_free(jail);
        }
    }

    /// A source's thread ended at `positions`: remember them, and start the jail's new source
    /// if one was waiting for this one to stop.
    pub fn stopped(
        &mut self,
        config: &Config,
        jail: &JailName,
        id: u64,
        positions: Vec<(String, Position)>,
    ) {
        self.resume.extend(positions);
        if self.stopping.remove(&id).is_none() {
            // Not asked to stop: its thread died. Start it again from where it was.
            if let Some(i) = self.running.iter().position(|s| s.id == id) {
                tracing::error!(jail = %jail, "a log source ended by itself: restarting it");
                self.running.swap_remove(i);
            } else {
                return;
            }
        }
        if let Some(j) = config.enabled().find(|j| &j.name == jail) {
            self.start_if_free(j);
        }
    }

    /// Starts the source of `jail` unless it has one running or stopping.
    fn start_if_free(&mut self, jail: &JailConfig) {
        if self.closing
            || !matches!(jail.kind, JailKind::Log { .. })
            || self.running.iter().any(|s| s.jail == jail.name)
            || self.stopping.values().any(|j| *j == jail.name)
        {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        if let Some(source) = start_source(jail, id, &self.resume, &self.events, &self.options) {
            tracing::debug!(jail = %jail.name, id, "source started");
            self.running.push(source);
        }
    }

    /// Asks every source to stop, for good (none starts again).
    pub fn stop_all(&mut self) {
        self.closing = true;
        for source in std::mem::take(&mut self.running) {
            self.stopping.insert(source.id, source.jail.clone());
            source.stop();
        }
    }

    /// Whether no source runs or is stopping.
    pub fn all_stopped(&self) -> bool {
        self.running.is_empty() && self.stopping.is_empty()
    }

    pub fn running(&self) -> &[RunningSource] {
        &self.running
    }

    /// The running source of `jail`.
    pub fn of(&self, jail: &JailName) -> Option<&RunningSource> {
        self.running.iter().find(|s| &s.jail == jail)
    }
}

/// The enabled log jail named `name` in `config`, with what it reads.
fn wanted<'a>(
    config: &'a Config,
    name: &JailName,
) -> Option<(&'a JailConfig, &'a crate::config::Source)> {
    config
        .enabled()
        .find(|j| &j.name == name)
        .and_then(|j| match &j.kind {
            JailKind::Log { source, .. } => Some((j, source)),
            _ => None,
        })
}
