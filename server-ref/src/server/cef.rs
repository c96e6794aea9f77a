//! The audit trail in ArcSight Common Event Format (CEF:0), one line per entry, for SIEMs
//! (`GET /v1/audit/cef`, `GET /v1/audit/cef/feed`, and `entries.cef` of an audit package).
//!
//! `CEF:0|licensing|licensing-server|<version>|<signature id>|<name>|<severity>|<extension>`:
//! the signature id is the entry's action (`POST /v1/licenses/{id}/suspend`, or an event's
//! dotted name such as `lease.denied`); the extension uses the standard keys `rt` (epoch
//! milliseconds), `suser`, `act`, `request`, `outcome`, `externalId` (the seq), and labelled
//! custom fields. The mapping is docs/FORMAT.md, "Audit evidence".
//!
//! Escaping (CEF rules): in header fields `\` and `|` are backslash-escaped (and a line break,
//! which a header cannot hold, becomes a space); in extension values `\` and `=` are
//! backslash-escaped and line breaks are written `\n` and `\r`. Every line is one line.

use super::db::{AuditEntry, AuditEventRow};

/// The CEF version, vendor and product of every line.
const PREFIX: &str = "CEF:0|licensing|licensing-server|";

/// A header field, escaped.
pub(crate) fn escape_header(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// An extension value, escaped.
pub(crate) fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// One CEF line (without its line break) from header fields and extension pairs (keys are
/// fixed ASCII names; values are escaped here; empty values are left out).
fn line(signature: &str, name: &str, severity: u8, extension: &[(&str, String)]) -> String {
    let mut out = format!(
        "{PREFIX}{}|{}|{}|{severity}|",
        escape_header(env!("CARGO_PKG_VERSION")),
        escape_header(signature),
        escape_header(name),
    );
    let mut first = true;
    for (n, (key, value)) in extension.iter().enumerate() {
        // A custom field's label goes with its value: both left out when the value is empty.
        let labelled = extension.get(n + 1).filter(|_| key.ends_with("Label"));
        if value.is_empty() || labelled.is_some_and(|(_, v)| v.is_empty()) {
            continue;
        }
        if !first {
            out.push(' ');
        }
        first = false;
        out.push_str(key);
        out.push('=');
        out.push_str(&escape_value(value));
    }
    out
}

/// Severity of an admin request (0 to 10): 7 for the security-relevant routes (keys, API
/// tokens, organizations, erasure, retention, the GDPR routes), 5 for a deletion, a
/// suspension or a revocation, 3 otherwise.
pub(crate) fn admin_severity(action: &str) -> u8 {
    let route = action.split_once(' ').map_or(action, |(_, r)| r);
    let security = [
        "/v1/keys",
        "/v1/api-tokens",
        "/v1/organizations",
        "/v1/audit/erase",
        "/v1/retention",
        "/v1/gdpr",
        "/v1/users/{id}/erase",
    ];
    if security.iter().any(|p| route.starts_with(p)) {
        7
    } else if action.starts_with("DELETE ")
        || route.ends_with("/suspend")
        || route.ends_with("/revoke")
    {
        5
    } else {
        3
    }
}

/// Severity and name of a client event (0 to 10): refusals and denials 5 (a refused console
/// sign-in 6), removals and reclamations 4, the rest 2.
pub(crate) fn event_severity(action: &str) -> (u8, &'static str) {
    use super::audit::action as a;
    match action {
        a::MACHINE_ACTIVATED => (2, "Machine activated"),
        a::MACHINE_ACTIVATION_REFUSED => (5, "Machine activation refused"),
        a::MACHINE_TRANSFERRED => (3, "Machine transferred"),
        a::MACHINE_TRANSFER_REFUSED => (5, "Machine transfer refused"),
        a::MACHINE_DEACTIVATED => (4, "Machine deactivated"),
        a::LEASE_CHECKED_OUT => (2, "Seat checked out"),
        a::LEASE_DENIED => (5, "Seat denied"),
        a::LEASE_CHECKED_IN => (2, "Seat checked in"),
        a::LEASE_FORCE_RELEASED => (4, "Seat force-released"),
        a::SEAT_RECLAIMED => (4, "Seat reclaimed"),
        a::USER_DEPROVISIONED => (4, "User deprovisioned"),
        a::CONSOLE_SIGNED_IN => (3, "Console sign-in"),
        a::CONSOLE_SIGN_IN_REFUSED => (6, "Console sign-in refused"),
        _ => (3, "Licensing event"),
    }
}

fn millis(at: i64) -> String {
    at.saturating_mul(1000).to_string()
}

/// The CEF line of an admin entry.
pub(crate) fn admin_line(entry: &AuditEntry) -> String {
    let outcome = if (200..300).contains(&entry.status) {
        "success"
    } else {
        "failure"
    };
    line(
        &entry.action,
        &entry.action,
        admin_severity(&entry.action),
        &[
            ("rt", millis(entry.at)),
            ("externalId", entry.seq.to_string()),
            ("suser", entry.actor.clone()),
            ("act", entry.action.clone()),
            ("request", entry.target.clone()),
            ("outcome", outcome.to_owned()),
            ("cn1Label", "httpStatus".to_owned()),
            ("cn1", entry.status.to_string()),
            ("cs1Label", "organization".to_owned()),
            ("cs1", entry.organization_id.clone().unwrap_or_default()),
            ("cs2Label", "hash".to_owned()),
            ("cs2", entry.hash.clone()),
            ("cs3Label", "targetId".to_owned()),
            ("cs3", entry.target_id.clone().unwrap_or_default()),
            ("cs4Label", "chain".to_owned()),
            ("cs4", "audit_log".to_owned()),
        ],
    )
}

/// The CEF line of a client event. `duser` is the person it names (absent once erased).
pub(crate) fn event_line(event: &AuditEventRow) -> String {
    let (severity, name) = event_severity(&event.action);
    let refused = event.action.ends_with("_refused") || event.action.ends_with(".denied");
    line(
        &event.action,
        name,
        severity,
        &[
            ("rt", millis(event.at)),
            ("externalId", event.seq.to_string()),
            ("suser", event.actor.clone()),
            ("act", event.action.clone()),
            ("duser", event.subject.clone().unwrap_or_default()),
            (
                "outcome",
                if refused { "failure" } else { "success" }.to_owned(),
            ),
            ("cs1Label", "organization".to_owned()),
            ("cs1", event.organization_id.clone()),
            ("cs2Label", "hash".to_owned()),
            ("cs2", event.hash.clone()),
            ("cs3Label", "targetId".to_owned()),
            ("cs3", event.target_id.clone()),
            ("cs4Label", "chain".to_owned()),
            ("cs4", "audit_events".to_owned()),
            ("cs5Label", "licenseId".to_owned()),
            ("cs5", event.license_id.clone().unwrap_or_default()),
            ("cs6Label", "detail".to_owned()),
            ("cs6", event.detail.clone()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A CEF reader written from the specification, independent of the writer above: splits
    /// the header on unescaped `|` and the extension on unescaped `=` (the key is the last
    /// word before it), then unescapes.
    fn parse(line: &str) -> (Vec<String>, Vec<(String, String)>) {
        let mut header = Vec::new();
        let mut field = String::new();
        let mut chars = line.char_indices();
        let mut rest = "";
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, next)) = chars.next() {
                        field.push(next);
                    }
                }
                '|' => {
                    header.push(std::mem::take(&mut field));
                    if header.len() == 7 {
                        rest = &line[i + 1..];
                        break;
                    }
                }
                c => field.push(c),
            }
        }
        // Extension: raw text until each unescaped `=`.
        let mut pieces = Vec::new();
        let mut raw = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    raw.push('\\');
                    if let Some(next) = chars.next() {
                        raw.push(next);
                    }
                }
                '=' => pieces.push(std::mem::take(&mut raw)),
                c => raw.push(c),
            }
        }
        pieces.push(raw);
        let unescape = |raw: &str| {
            let mut out = String::new();
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some('n') => out.push('\n'),
                        Some('r') => out.push('\r'),
                        Some(other) => out.push(other),
                        None => {}
                    }
                } else {
                    out.push(c);
                }
            }
            out
        };
        let mut pairs = Vec::new();
        let mut key = pieces.first().cloned().unwrap_or_default();
        for (n, piece) in pieces.iter().enumerate().skip(1) {
            let (value, next_key) = if n + 1 == pieces.len() {
                (piece.as_str(), "")
            } else {
                let at = piece.rfind(' ').unwrap();
                (&piece[..at], &piece[at + 1..])
            };
            pairs.push((key.clone(), unescape(value)));
            key = next_key.to_owned();
        }
        (header, pairs)
    }

    fn entry(action: &str, target: &str, actor: &str) -> AuditEntry {
        AuditEntry {
            seq: 7,
            at: 1_700_000_000,
            organization_id: Some("org=|\\x".into()),
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            target_id: None,
            status: 201,
            prev_hash: "0".repeat(64),
            hash: "a".repeat(64),
        }
    }

    #[test]
    fn tricky_characters_are_escaped_where_cef_asks() {
        let line = admin_line(&entry(
            "POST /v1/a|b\\c",
            "/v1/x=y\\z|w\nnext=1",
            "tok = a\\",
        ));
        assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
        assert!(line.starts_with(
            "CEF:0|licensing|licensing-server|0.1.0|POST /v1/a\\|b\\\\c|POST /v1/a\\|b\\\\c|3|rt=1700000000000 "
        ), "{line}");
        assert!(
            line.contains("request=/v1/x\\=y\\\\z|w\\nnext\\=1 "),
            "{line}"
        );
        assert!(line.contains("suser=tok \\= a\\\\ "), "{line}");
        assert!(line.contains("cs1=org\\=|\\\\x "), "{line}");
        let (header, pairs) = parse(&line);
        assert_eq!(header[4], "POST /v1/a|b\\c");
        let get = |k: &str| pairs.iter().find(|(key, _)| key == k).unwrap().1.clone();
        assert_eq!(get("request"), "/v1/x=y\\z|w\nnext=1");
        assert_eq!(get("suser"), "tok = a\\");
        assert_eq!(get("cs1"), "org=|\\x");
        assert_eq!(get("outcome"), "success");
        assert_eq!(get("externalId"), "7");
    }

    #[test]
    fn severities_follow_the_mapping() {
        assert_eq!(admin_severity("POST /v1/keys/rotate"), 7);
        assert_eq!(admin_severity("POST /v1/api-tokens"), 7);
        assert_eq!(admin_severity("DELETE /v1/assignments/{id}"), 5);
        assert_eq!(admin_severity("POST /v1/licenses/{id}/revoke"), 5);
        assert_eq!(admin_severity("POST /v1/licenses"), 3);
        assert_eq!(event_severity("lease.denied").0, 5);
        assert_eq!(event_severity("console.sign_in_refused").0, 6);
        assert_eq!(event_severity("lease.checked_out").0, 2);
    }

    proptest! {
        /// Whatever the fields hold, the line is one line, and an independent reader gets
        /// every field back as written.
        #[test]
        fn every_field_round_trips(
            action in "\\PC{0,12}[|\\\\=]?\\PC{0,12}",
            target in "[ -~\\n\\r\\\\=|é]{0,40}",
            actor in "[ -~\\n\\\\=|]{1,20}",
        ) {
            let line = admin_line(&entry(&action, &target, &actor));
            prop_assert!(!line.contains('\n') && !line.contains('\r'));
            let (header, pairs) = parse(&line);
            prop_assert_eq!(header.len(), 7);
            prop_assert_eq!(&header[4], &action.replace(['\n', '\r'], " "));
            let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|p| p.1.clone());
            if !target.is_empty() {
                prop_assert_eq!(get("request"), Some(target.clone()));
            }
            prop_assert_eq!(get("suser"), Some(actor.clone()));
            prop_assert_eq!(get("cs2"), Some("a".repeat(64)));
        }
    }
}
