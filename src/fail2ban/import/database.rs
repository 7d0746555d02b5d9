//! fail2ban's database (`/var/lib/fail2ban/fail2ban.sqlite3`): its active bans.
//!
//! Receives the database's path and `now`. Emits every ban still in force in the `bips` table
//! (fail2ban's latest ban per address and jail): `timeofban + bantime > now`, or a permanent one
//! (`bantime < 0`), with its jail, start, end and ban count. Opens the file read-only (fail2ban
//! may be running) and never writes to it.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::control::protocol::ImportedBan;

/// Why the database could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("{path}: cannot open fail2ban's database: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: not a fail2ban database of schema 4 or later (no bips table): {source}")]
    Schema {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: cannot read its bans: {source}")]
    Read {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
}

/// The active bans of the database at `path` at `now` (Unix seconds), oldest first.
pub fn active_bans(path: &Path, now: i64) -> Result<Vec<ImportedBan>, DatabaseError> {
    let name = path.display().to_string();
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| DatabaseError::Open {
        path: name.clone(),
        source,
    })?;
    let mut statement = connection
        .prepare(
            "SELECT jail, ip, timeofban, bantime, bancount FROM bips \
             WHERE bantime < 0 OR timeofban + bantime > ?1 ORDER BY timeofban",
        )
        .map_err(|source| DatabaseError::Schema {
            path: name.clone(),
            source,
        })?;
    let rows = statement
        .query_map([now], |row| {
            let since: i64 = row.get(2)?;
            let bantime: Option<i64> = row.get(3)?;
            let count: Option<i64> = row.get(4)?;
            let bantime = bantime.unwrap_or(-1);
            Ok(ImportedBan {
                jail: row.get(0)?,
                target: row.get(1)?,
                since,
                expires: (bantime >= 0).then(|| since.saturating_add(bantime)),
                count: count.map_or(1, |c| u32::try_from(c.max(1)).unwrap_or(u32::MAX)),
            })
        })
        .map_err(|source| DatabaseError::Read {
            path: name.clone(),
            source,
        })?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|source| DatabaseError::Read { path: name, source })
}
