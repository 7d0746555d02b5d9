//! The `import` request at the edge: bans decided elsewhere, decoded and checked line by line.
//!
//! Receives the request's inline bans and, with `stream`, one JSON [`ImportedBan`] a line up to
//! an empty line; emits [`Command::Import`] with every ban parsed (target, times, count) and every
//! line it could not use as a [`Rejected`] with its line number. It never decides whether a jail
//! exists (the core does, and names the ones that do not).

use tokio::io::AsyncBufRead;

use crate::control::Command;
use crate::control::protocol::{ImportedBan, Rejected};
use nftjail_core::tracker::CarriedBan;

/// The command for an `import` request (reading its stream when there is one).
pub(super) async fn command<R: AsyncBufRead + Unpin>(
    inline: Vec<ImportedBan>,
    stream: bool,
    reader: &mut R,
) -> Result<Command, String> {
    let mut bans = Vec::with_capacity(inline.len());
    let mut rejected = Vec::new();
    for ban in inline {
        take(ban, 0, &mut bans, &mut rejected);
    }
    if stream {
        read(reader, &mut bans, &mut rejected).await?;
    }
    Ok(Command::Import { bans, rejected })
}

fn take(
    ban: ImportedBan,
    line: usize,
    bans: &mut Vec<(String, CarriedBan)>,
    rejected: &mut Vec<Rejected>,
) {
    match ban.target.parse() {
        Ok(target) => bans.push((
            ban.jail,
            CarriedBan {
                target,
                since: ban.since,
                expires: ban.expires,
                count: ban.count,
            },
        )),
        Err(e) => rejected.push(Rejected {
            line,
            text: ban.target,
            error: format!("{e}"),
        }),
    }
}

async fn read<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    bans: &mut Vec<(String, CarriedBan)>,
    rejected: &mut Vec<Rejected>,
) -> Result<(), String> {
    super::stream_lines(reader, "ban list", rejected, |number, line, rejected| {
        match serde_json::from_slice::<ImportedBan>(line) {
            Ok(ban) => take(ban, number, bans, rejected),
            Err(e) => rejected.push(Rejected {
                line: number,
                text: String::from_utf8_lossy(line).chars().take(200).collect(),
                error: format!("not an imported ban: {e}"),
            }),
        }
    })
    .await
}
