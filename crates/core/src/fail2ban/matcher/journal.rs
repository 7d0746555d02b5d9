//! fail2ban's `formatJournalEntry`: the line its systemd backend matches for a journal entry.
//!
//! Receives: the fields of a journal entry.
//! Emits: `HOSTNAME IDENT[PID]: MESSAGE` as fail2ban builds it.
//! Never: reads the journal.

/// Formats a journal entry's fields (`_HOSTNAME`, `SYSLOG_IDENTIFIER`/`_COMM`,
/// `SYSLOG_PID`/`_PID`, `MESSAGE`, `_SOURCE_MONOTONIC_TIMESTAMP` for the kernel).
pub fn format_entry(field: impl Fn(&str) -> Option<String>) -> String {
    let mut elements: Vec<String> = Vec::new();
    if let Some(host) = field("_HOSTNAME").filter(|value| !value.is_empty()) {
        elements.push(host);
    }
    let identifier = field("SYSLOG_IDENTIFIER")
        .filter(|value| !value.is_empty())
        .or_else(|| field("_COMM").filter(|value| !value.is_empty()));
    if let Some(identifier) = identifier {
        let mut element = identifier;
        let pid = field("SYSLOG_PID")
            .filter(|value| !value.is_empty())
            .or_else(|| field("_PID").filter(|value| !value.is_empty()));
        if let Some(pid) = pid {
            match pid.trim().parse::<i64>() {
                Ok(number) => element.push_str(&format!("[{number}]")),
                Err(_) => element.push_str(&format!("[{pid}]")),
            }
        }
        element.push(':');
        let kernel = element == "kernel:";
        elements.push(element);
        if kernel {
            let monotonic =
                field("_SOURCE_MONOTONIC_TIMESTAMP").or_else(|| field("__MONOTONIC_TIMESTAMP"));
            let micros: f64 = monotonic
                .and_then(|value| value.parse().ok())
                .unwrap_or(0.0);
            elements.push(format!("[{:12.6}]", micros / 1_000_000.0));
        }
    }
    elements.push(field("MESSAGE").unwrap_or_default());
    elements.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_fail2ban() {
        let fields = [
            ("_HOSTNAME", "srv"),
            ("SYSLOG_IDENTIFIER", "sshd"),
            ("_PID", "42"),
            ("MESSAGE", "Invalid user x from 192.0.2.1"),
        ];
        let line = format_entry(|name| {
            fields
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        });
        assert_eq!(line, "srv sshd[42]: Invalid user x from 192.0.2.1");
    }
}
