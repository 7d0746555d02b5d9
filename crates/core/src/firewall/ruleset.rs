//! The ruleset: every rule and forward with its stable id, in the order the kernel applies them.
//!
//! Receives the `firewall.d` entries of a configuration, the changes asked through the API and,
//! at start, what the state log replayed ([`FirewallState`]); emits a [`Change`] — the next
//! ruleset and the [`FirewallRecord`]s that make it durable — or a [`FirewallError`] saying why
//! it is refused. Nothing changes in place: the caller keeps the current ruleset until the
//! kernel and the disk both took the change, then swaps it in.
//!
//! Ids come from one counter that never goes back (kept in the state log, compactions
//! included), shared by rules and forwards. A `firewall.d` rule keeps its id across reloads and
//! restarts as long as its file and its content stay the same (its line may move); an edited rule
//! is a new rule with a new id. Order: the file rules first, in file order (files in lexical
//! order), then the rules added through the API, in creation order.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Forward, Rule};

/// Where a rule or forward comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A `firewall.d` file (its path as shown to people, e.g. `firewall.d/10-hosting.toml`) and
    /// the line of its `[[rule]]` or `[[forward]]` header.
    File { file: String, line: usize },
    /// Added through the control socket.
    Api,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { file, line } => write!(f, "{file}:{line}"),
            Origin::Api => f.write_str("api"),
        }
    }
}

/// A rule or a forward with its id and origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<T> {
    pub id: u64,
    pub origin: Origin,
    pub item: T,
}

/// A rule or forward as a `firewall.d` file gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry<T> {
    pub file: String,
    pub line: usize,
    pub item: T,
}

/// One line of the state log about the firewall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FirewallRecord {
    /// A rule with its id: added through the API (`file` absent), or a `firewall.d` rule given
    /// its id.
    Rule {
        id: u64,
        rule: Rule,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<String>,
    },
    Forward {
        id: u64,
        forward: Forward,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<String>,
    },
    /// The rule or forward with this id is gone.
    Deleted { id: u64 },
    /// The firewall was switched on or off through the API (this wins over `[firewall]
    /// enabled` from then on).
    Enabled { enabled: bool },
    /// The next id to give (written by compactions, so that ids are never given twice).
    NextId { next: u64 },
}

/// What a replay of the state log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallState {
    pub rules: BTreeMap<u64, (Rule, Option<String>)>,
    pub forwards: BTreeMap<u64, (Forward, Option<String>)>,
    pub enabled: Option<bool>,
    pub next_id: u64,
}

impl FirewallState {
    /// Takes one record of the log, in order.
    pub fn apply(&mut self, record: FirewallRecord) {
        let seen = |next: &mut u64, id: u64| *next = (*next).max(id.saturating_add(1));
        match record {
            FirewallRecord::Rule { id, rule, file } => {
                seen(&mut self.next_id, id);
                self.rules.insert(id, (rule, file));
            }
            FirewallRecord::Forward { id, forward, file } => {
                seen(&mut self.next_id, id);
                self.forwards.insert(id, (forward, file));
            }
            FirewallRecord::Deleted { id } => {
                self.rules.remove(&id);
                self.forwards.remove(&id);
            }
            FirewallRecord::Enabled { enabled } => self.enabled = Some(enabled),
            FirewallRecord::NextId { next } => self.next_id = self.next_id.max(next),
        }
    }
}

/// Why a change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FirewallError {
    #[error("there is no rule or forward with id {0}")]
    NoSuch(u64),
    #[error("{0} is a forward, not a rule (`nftjail forward delete {0}`)")]
    NotARule(u64),
    #[error("{0} is a rule, not a forward (`nftjail rule delete {0}`)")]
    NotAForward(u64),
    #[error("rule {id} is protected ({rule}): it cannot be deleted through the API")]
    Protected { id: u64, rule: String },
    #[error("protected rules come from firewall.d files, not from the API")]
    ProtectedFromApi,
    #[error("{kind} {id} comes from {origin}: remove it there and reload")]
    FromFile {
        kind: &'static str,
        id: u64,
        origin: String,
    },
    #[error("rule {id} already does this: {rule}")]
    Duplicate { id: u64, rule: String },
    #[error("forward {id} already takes these packets: {forward}")]
    Overlap { id: u64, forward: String },
}

/// A ruleset to swap in once the kernel and the disk took it, with the records that say so.
#[derive(Debug, Clone)]
pub struct Change {
    pub ruleset: Ruleset,
    pub records: Vec<FirewallRecord>,
    /// The id of the rule or forward the change added.
    pub id: Option<u64>,
}

/// Every rule and forward, in order, with the API's on/off switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    rules: Vec<Entry<Rule>>,
    forwards: Vec<Entry<Forward>>,
    enabled: Option<bool>,
    next_id: u64,
}

impl Default for Ruleset {
    fn default() -> Ruleset {
        Ruleset {
            rules: Vec::new(),
            forwards: Vec::new(),
            enabled: None,
            next_id: 1,
        }
    }
}

impl Ruleset {
    /// The ruleset the state log held; its file entries get their place (and line) from the
    /// next [`with_files`](Self::with_files).
    pub fn restore(state: FirewallState) -> Ruleset {
        fn entries<T>(map: BTreeMap<u64, (T, Option<String>)>) -> Vec<Entry<T>> {
            let (mut files, mut api): (Vec<_>, Vec<_>) = (Vec::new(), Vec::new());
            for (id, (item, file)) in map {
                match file {
                    Some(file) => files.push(Entry {
                        id,
                        origin: Origin::File { file, line: 0 },
                        item,
                    }),
                    None => api.push(Entry {
                        id,
                        origin: Origin::Api,
                        item,
                    }),
                }
            }
            files.extend(api);
            files
        }
        let highest = state
            .rules
            .keys()
            .chain(state.forwards.keys())
            .max()
            .map_or(0, |id| id + 1);
        Ruleset {
            next_id: state.next_id.max(highest).max(1),
            enabled: state.enabled,
            rules: entries(state.rules),
            forwards: entries(state.forwards),
        }
    }

    /// Rules in the order they apply (both chains).
    pub fn rules(&self) -> &[Entry<Rule>] {
        &self.rules
    }

    pub fn forwards(&self) -> &[Entry<Forward>] {
        &self.forwards
    }

    /// The API's switch: `None` until `firewall enable` or `disable` was used.
    pub fn enabled(&self) -> Option<bool> {
        self.enabled
    }

    /// The ruleset with the `firewall.d` entries of a (re)loaded configuration: unchanged
    /// entries keep their ids, new ones get new ids, vanished ones are deleted; the API's
    /// entries stay after them.
    pub fn with_files(&self, rules: &[FileEntry<Rule>], forwards: &[FileEntry<Forward>]) -> Change {
        let mut next = self.clone();
        let mut records = Vec::new();
        next.rules = merge_files(
            &self.rules,
            rules,
            &mut next.next_id,
            &mut records,
            |id, rule, file| FirewallRecord::Rule { id, rule, file },
        );
        next.forwards = merge_files(
            &self.forwards,
            forwards,
            &mut next.next_id,
            &mut records,
            |id, forward, file| FirewallRecord::Forward { id, forward, file },
        );
        Change {
            ruleset: next,
            records,
            id: None,
        }
    }

    /// Adds `rule` at the end (it applies after every existing rule).
    pub fn add_rule(&self, rule: Rule) -> Result<Change, FirewallError> {
        if rule.protected {
            return Err(FirewallError::ProtectedFromApi);
        }
        if let Some(same) = self.rules.iter().find(|e| e.item.same_match(&rule)) {
            return Err(FirewallError::Duplicate {
                id: same.id,
                rule: same.item.to_string(),
            });
        }
        let mut next = self.clone();
        let id = next.take_id();
        next.rules.push(Entry {
            id,
            origin: Origin::Api,
            item: rule.clone(),
        });
        Ok(Change {
            ruleset: next,
            records: vec![FirewallRecord::Rule {
                id,
                rule,
                file: None,
            }],
            id: Some(id),
        })
    }

    /// Deletes rule `id`, unless it is protected or comes from a file.
    pub fn delete_rule(&self, id: u64) -> Result<Change, FirewallError> {
        let Some(index) = self.rules.iter().position(|e| e.id == id) else {
            return Err(match self.forwards.iter().any(|e| e.id == id) {
                true => FirewallError::NotARule(id),
                false => FirewallError::NoSuch(id),
            });
        };
        let entry = &self.rules[index];
        if entry.item.protected {
            return Err(FirewallError::Protected {
                id,
                rule: entry.item.to_string(),
            });
        }
        if let Origin::File { .. } = entry.origin {
            return Err(FirewallError::FromFile {
                kind: "rule",
                id,
                origin: entry.origin.to_string(),
            });
        }
        let mut next = self.clone();
        next.rules.remove(index);
        Ok(deleted(next, id))
    }

    /// Adds a forward, unless another one already takes the same packets.
    pub fn add_forward(&self, forward: Forward) -> Result<Change, FirewallError> {
        if let Some(other) = self.forwards.iter().find(|e| e.item.overlaps(&forward)) {
            return Err(FirewallError::Overlap {
                id: other.id,
                forward: other.item.to_string(),
            });
        }
        let mut next = self.clone();
        let id = next.take_id();
        next.forwards.push(Entry {
            id,
            origin: Origin::Api,
            item: forward.clone(),
        });
        Ok(Change {
            ruleset: next,
            records: vec![FirewallRecord::Forward {
                id,
                forward,
                file: None,
            }],
            id: Some(id),
        })
    }

    /// Deletes forward `id`, unless it comes from a file.
    pub fn delete_forward(&self, id: u64) -> Result<Change, FirewallError> {
        let Some(index) = self.forwards.iter().position(|e| e.id == id) else {
            return Err(match self.rules.iter().any(|e| e.id == id) {
                true => FirewallError::NotAForward(id),
                false => FirewallError::NoSuch(id),
            });
        };
        if let Origin::File { .. } = self.forwards[index].origin {
            return Err(FirewallError::FromFile {
                kind: "forward",
                id,
                origin: self.forwards[index].origin.to_string(),
            });
        }
        let mut next = self.clone();
        next.forwards.remove(index);
        Ok(deleted(next, id))
    }

    /// Switches the firewall on or off through the API.
    pub fn set_enabled(&self, enabled: bool) -> Change {
        let mut next = self.clone();
        next.enabled = Some(enabled);
        Change {
            ruleset: next,
            records: vec![FirewallRecord::Enabled { enabled }],
            id: None,
        }
    }

    /// The records that rebuild this ruleset (a compaction's snapshot).
    pub fn records(&self) -> Vec<FirewallRecord> {
        let file = |origin: &Origin| match origin {
            Origin::File { file, .. } => Some(file.clone()),
            Origin::Api => None,
        };
        let mut records = vec![FirewallRecord::NextId { next: self.next_id }];
        records.extend(
            self.enabled
                .map(|enabled| FirewallRecord::Enabled { enabled }),
        );
        records.extend(self.rules.iter().map(|e| FirewallRecord::Rule {
            id: e.id,
            rule: e.item.clone(),
            file: file(&e.origin),
        }));
        records.extend(self.forwards.iter().map(|e| FirewallRecord::Forward {
            id: e.id,
            forward: e.item.clone(),
            file: file(&e.origin),
        }));
        records
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}

fn deleted(ruleset: Ruleset, id: u64) -> Change {
    Change {
        ruleset,
        records: vec![FirewallRecord::Deleted { id }],
        id: Some(id),
    }
}

/// The file entries `wanted` (matched to `current`'s file entries by file and content, in
/// order), then `current`'s API entries; records for what is new and what vanished.
fn merge_files<T: Clone + PartialEq>(
    current: &[Entry<T>],
    wanted: &[FileEntry<T>],
    next_id: &mut u64,
    records: &mut Vec<FirewallRecord>,
    record: impl Fn(u64, T, Option<String>) -> FirewallRecord,
) -> Vec<Entry<T>> {
    let mut unused: Vec<Option<&Entry<T>>> = current
        .iter()
        .map(|e| matches!(e.origin, Origin::File { .. }).then_some(e))
        .collect();
    let mut merged = Vec::with_capacity(wanted.len() + current.len());
    for want in wanted {
        let found = unused.iter_mut().find(|slot| {
            slot.is_some_and(|e| {
                e.item == want.item
                    && matches!(&e.origin, Origin::File { file, .. } if *file == want.file)
            })
        });
        let id = match found.and_then(Option::take) {
            Some(existing) => existing.id,
            None => {
                let id = *next_id;
                *next_id += 1;
                records.push(record(id, want.item.clone(), Some(want.file.clone())));
                id
            }
        };
        merged.push(Entry {
            id,
            origin: Origin::File {
                file: want.file.clone(),
                line: want.line,
            },
            item: want.item.clone(),
        });
    }
    records.extend(
        unused
            .into_iter()
            .flatten()
            .map(|gone| FirewallRecord::Deleted { id: gone.id }),
    );
    merged.extend(current.iter().filter(|e| e.origin == Origin::Api).cloned());
    merged
}

#[cfg(test)]
mod tests;
