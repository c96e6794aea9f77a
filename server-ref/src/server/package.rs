//! The one-click audit package (issue 24): one zip for a vendor audit, built by
//! `GET /v1/audit/package` and checked offline by `licensing-server audit verify-package FILE`.
//!
//! Layout (docs/FORMAT.md, "Audit package"): `README.txt`, `manifest.json`, `entries.jsonl`
//! (the organization's admin entries, one JSON object a line), `entries.cef` (those entries and
//! the client events in CEF), `events.jsonl` (the client events of the period), `checkpoints.jsonl`
//! (the `audit-checkpoint+jwt` tokens that cover the entries), `compliance.json` (the
//! `GET /v1/alerts` report), `licenses.json` (the licenses, their terms and signed tokens) and
//! `jwks.json` (the keys the checkpoints verify with).
//!
//! Verification ([`verify`]) trusts nothing in the zip but the keys it is told to trust (the
//! package's `jwks.json`, or one given with `--jwks`): every checkpoint must verify with them;
//! every entry's hash must be the one its columns call for; the entries in each checkpoint's
//! range `(prev_seq, seq]` must fold to its signed digest (so an entry altered, removed or
//! added there is found); entries after the last checkpoint are reported as uncovered.

use std::collections::BTreeSet;
use std::io::{Read, Write};

use licensing_core::TrustStore;
use licensing_core::audit_checkpoint::{
    AuditCheckpointClaims, SCOPE_ORGANIZATION, fold_digest, verify_audit_checkpoint,
};
use serde_json::{Value, json};

use super::AppState;
use super::db::{AuditEntry, AuditEventRow, LicenseRow, SignedCheckpointRow, entry_hash};
use super::error::ApiError;

/// Entries (and events) one package holds at most.
pub(crate) const MAX_ENTRIES: usize = 200_000;
/// Checkpoints one package holds at most.
pub(crate) const MAX_CHECKPOINTS: i64 = 10_000;
/// Licenses one package holds at most.
pub(crate) const MAX_LICENSES: i64 = 10_000;
/// Largest package file `verify-package` reads.
pub(crate) const MAX_PACKAGE_BYTES: u64 = 512 * 1024 * 1024;
/// How much `verify-package` decompresses at most: a zip bomb stops here.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    /// Bytes of one member.
    pub member: u64,
    /// Bytes of all members together.
    pub total: u64,
}

/// The caps of `verify-package`.
pub(crate) const CAPS: Caps = Caps {
    member: 256 * 1024 * 1024,
    total: 768 * 1024 * 1024,
};
/// Uncovered seqs listed by name at most (the count is always given).
const LISTED: usize = 20;

/// The `format` of `manifest.json`.
const FORMAT: &str = "licensing-audit-package";

/// The members of a package, in the order they are written; nothing else is accepted.
pub(crate) const MEMBERS: [&str; 9] = [
    "README.txt",
    "manifest.json",
    "entries.jsonl",
    "entries.cef",
    "events.jsonl",
    "checkpoints.jsonl",
    "compliance.json",
    "licenses.json",
    "jwks.json",
];

/// What one package holds.
pub(crate) struct Contents<'a> {
    /// The organization.
    pub organization: &'a str,
    /// The server's `iss`.
    pub issuer: &'a str,
    /// The period asked for (Unix seconds, both included).
    pub from: i64,
    /// The end of the period.
    pub to: i64,
    /// When the package was built.
    pub generated_at: i64,
    /// The admin entries (the period's, extended to the checkpoints' ranges).
    pub entries: &'a [AuditEntry],
    /// The client events of the period.
    pub events: &'a [AuditEventRow],
    /// The checkpoints covering the entries.
    pub checkpoints: &'a [SignedCheckpointRow],
    /// The compliance report.
    pub compliance: Value,
    /// The licenses ([`license_json`]).
    pub licenses: Vec<Value>,
    /// The JWK Set.
    pub jwks: Value,
    /// The entries and events in CEF.
    pub cef: String,
}

/// The `prev_seq` claim of a checkpoint token (read without verifying: the server's own).
pub(crate) fn prev_seq_of(token: &str) -> Option<i64> {
    licensing_core::decode_unverified(token)
        .ok()
        .and_then(|(_, claims)| claims["prev_seq"].as_i64())
}

/// A license as the package lists it: its state, its terms (the claims template) and its
/// signed token when `with_token` (a role that manages licenses; otherwise `token_withheld`,
/// as `GET /v1/licenses` answers it: the token is the license itself, runnable anywhere).
pub(crate) fn license_json(row: &LicenseRow, with_token: bool) -> Value {
    let terms: Value = serde_json::from_str(&row.claims).unwrap_or(Value::Null);
    json!({
        "id": row.id,
        "product_id": row.product_id,
        "policy_id": row.policy_id,
        "status": row.status,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "expires_at": row.expires_at,
        "seat_mode": row.seat_mode,
        "terms": terms,
        "token": if with_token { row.token.clone() } else { None },
        "token_withheld": row.token.is_some() && !with_token,
    })
}

/// The published JWK Set, plus the public keys (retired ones included) that signed
/// `checkpoints` and are no longer published.
pub(crate) async fn jwks_for(
    state: &AppState,
    checkpoints: &[SignedCheckpointRow],
) -> Result<Value, ApiError> {
    let mut store =
        TrustStore::from_document(&state.jwks().to_string()).map_err(ApiError::internal)?;
    let needed: BTreeSet<&str> = checkpoints.iter().map(|c| c.kid.as_str()).collect();
    let published: BTreeSet<String> = store.keys().map(|k| k.kid().to_owned()).collect();
    if needed.iter().any(|kid| !published.contains(*kid)) {
        for (kid, pem) in state.db().every_signing_key_pem().await? {
            if needed.contains(kid.as_str()) && !published.contains(&kid) {
                let key =
                    licensing_core::PrivateKey::from_pkcs8_pem(&pem).map_err(ApiError::internal)?;
                store
                    .add(key.public_key().clone())
                    .map_err(ApiError::internal)?;
            }
        }
    }
    Ok(store.to_jwks())
}

fn readme(c: &Contents<'_>) -> String {
    format!(
        "Audit package of organization {org}, entries from {from} to {to} (Unix seconds),\n\
         generated at {at} by the licensing server `{iss}`.\n\
         \n\
         Files\n\
         - manifest.json      what the package holds (organization, period, counts)\n\
         - entries.jsonl      the organization's admin entries (one JSON object a line), the\n\
         \x20                    period's and those the covering checkpoints' ranges add\n\
         - entries.cef        the same entries and the client events, ArcSight CEF:0\n\
         - events.jsonl       the client events of the period (activations, check-outs, ...)\n\
         - checkpoints.jsonl  signed checkpoints (audit-checkpoint+jwt tokens) covering the\n\
         \x20                    entries\n\
         - compliance.json    the compliance report (GET /v1/alerts) at generation time\n\
         - licenses.json      the licenses, their terms and their signed tokens (withheld\n\
         \x20                    from an auditor's package: token_withheld)\n\
         - jwks.json          the public keys the checkpoints and tokens verify with\n\
         \n\
         Verify it offline\n\
         \x20 licensing-server audit verify-package {{this file}}\n\
         or, better, against keys you obtained from the vendor's server yourself (a package's own\n\
         jwks.json proves nothing if the whole package was forged):\n\
         \x20 licensing-server audit verify-package {{this file}} --jwks https://<server>/.well-known/jwks.json\n\
         Exit 0: every checkpoint verifies and every entry in its range is intact, in place and\n\
         complete; entries after the last checkpoint are listed as `uncovered` (add\n\
         --require-covered to fail on them). Exit 1: a check failed, the output says which and\n\
         why. Exit 2: the file cannot be read or is not a zip.\n\
         \n\
         What is checked: each checkpoint's signature (EdDSA) by a key of the JWKS, its type\n\
         and its organization; each entry's SHA-256 over its columns (docs/FORMAT.md); and that\n\
         the entries with prev_seq < seq <= the checkpoint's seq fold to the digest it signed.\n\
         Client events, the compliance report and the licenses are evidence as exported; the\n\
         license tokens verify with the same JWKS (licensing-server verify).\n",
        org = c.organization,
        from = c.from,
        to = c.to,
        at = c.generated_at,
        iss = c.issuer,
    )
}

fn jsonl<T: serde::Serialize>(rows: impl IntoIterator<Item = T>) -> Result<String, String> {
    let mut out = String::new();
    for row in rows {
        out.push_str(&serde_json::to_string(&row).map_err(|e| e.to_string())?);
        out.push('\n');
    }
    Ok(out)
}

/// Builds the zip in memory (deflated).
pub(crate) fn build(c: &Contents<'_>) -> Result<Vec<u8>, String> {
    let manifest = json!({
        "format": FORMAT,
        "version": 1,
        "organization": c.organization,
        "issuer": c.issuer,
        "from": c.from,
        "to": c.to,
        "generated_at": c.generated_at,
        "entries": c.entries.len(),
        "first_seq": c.entries.first().map(|e| e.seq),
        "last_seq": c.entries.last().map(|e| e.seq),
        "events": c.events.len(),
        "checkpoints": c.checkpoints.len(),
        "licenses": c.licenses.len(),
    });
    let checkpoints = jsonl(
        c.checkpoints
            .iter()
            .map(|cp| json!({ "id": cp.id, "at": cp.at, "token": cp.token })),
    )?;
    let pretty = |v: &Value| serde_json::to_string_pretty(v).map_err(|e| e.to_string());
    let files: [(&str, String); 9] = [
        ("README.txt", readme(c)),
        ("manifest.json", pretty(&manifest)?),
        ("entries.jsonl", jsonl(c.entries)?),
        ("entries.cef", c.cef.clone()),
        ("events.jsonl", jsonl(c.events)?),
        ("checkpoints.jsonl", checkpoints),
        ("compliance.json", pretty(&c.compliance)?),
        ("licenses.json", pretty(&json!({ "licenses": c.licenses }))?),
        ("jwks.json", pretty(&c.jwks)?),
    ];
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    for (name, body) in files {
        zip.start_file(name, options).map_err(|e| e.to_string())?;
        zip.write_all(body.as_bytes()).map_err(|e| e.to_string())?;
    }
    Ok(zip.finish().map_err(|e| e.to_string())?.into_inner())
}

/// An admin entry as `entries.jsonl` holds it.
#[derive(serde::Deserialize)]
struct PackagedEntry {
    seq: i64,
    at: i64,
    organization_id: Option<String>,
    actor: String,
    action: String,
    target: String,
    status: i64,
    prev_hash: String,
    hash: String,
}

/// A checkpoint as `checkpoints.jsonl` holds it.
#[derive(serde::Deserialize)]
struct PackagedCheckpoint {
    id: i64,
    token: String,
}

/// Why a package could not be checked at all (exit 2).
#[derive(Debug)]
pub(crate) struct Unreadable(pub String);

/// Reads the members of a zip, refusing what a package never holds: an unknown or repeated
/// name (a path, `..`), a directory, a member or a total larger than the caps once
/// decompressed. `Err(Unreadable)`: not a zip at all; `Ok(Err(reason))`: a zip, but not a sound
/// package.
fn members(
    bytes: &[u8],
    caps: Caps,
) -> Result<Result<std::collections::BTreeMap<String, String>, String>, Unreadable> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| Unreadable(format!("not a zip archive: {e}")))?;
    if archive.len() > MEMBERS.len() {
        return Ok(Err(format!(
            "the zip holds {} members, a package {}",
            archive.len(),
            MEMBERS.len()
        )));
    }
    let mut out = std::collections::BTreeMap::new();
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut file = match archive.by_index(i) {
            Ok(file) => file,
            Err(e) => return Ok(Err(format!("member {i}: {e}"))),
        };
        let name = match file.name() {
            Ok(name) => name.into_owned(),
            Err(e) => return Ok(Err(format!("member {i}: {e}"))),
        };
        if !MEMBERS.contains(&name.as_str()) || file.is_dir() {
            return Ok(Err(format!(
                "unexpected member `{}` (a package holds only {})",
                name.escape_debug(),
                MEMBERS.join(", ")
            )));
        }
        if out.contains_key(&name) {
            return Ok(Err(format!("member `{name}` appears twice")));
        }
        if file.size() > caps.member {
            return Ok(Err(format!(
                "member `{name}` claims {} bytes decompressed (at most {})",
                file.size(),
                caps.member
            )));
        }
        // The claimed size is the archive's word: the reader stops one byte past the cap.
        let mut body = Vec::new();
        if let Err(e) = (&mut file).take(caps.member + 1).read_to_end(&mut body) {
            return Ok(Err(format!("member `{name}`: {e}")));
        }
        let len = u64::try_from(body.len()).unwrap_or(u64::MAX);
        total = total.saturating_add(len);
        if len > caps.member || total > caps.total {
            return Ok(Err(format!(
                "member `{name}` decompresses past the caps ({} bytes a member, {} in all)",
                caps.member, caps.total
            )));
        }
        match String::from_utf8(body) {
            Ok(text) => {
                out.insert(name, text);
            }
            Err(_) => return Ok(Err(format!("member `{name}` is not UTF-8"))),
        }
    }
    Ok(Ok(out))
}

/// Checks a package (`bytes`) offline against `trust` (the package's own `jwks.json` when
/// `None`). `Err`: not a zip (exit 2); otherwise the report, whose `ok` says whether every
/// check passed (and, with `require_covered`, no entry is uncovered).
pub(crate) fn verify(
    bytes: &[u8],
    trust: Option<&TrustStore>,
    require_covered: bool,
) -> Result<Value, Unreadable> {
    verify_capped(bytes, trust, require_covered, CAPS)
}

/// [`verify`] with other decompression caps (tests).
pub(crate) fn verify_capped(
    bytes: &[u8],
    trust: Option<&TrustStore>,
    require_covered: bool,
    caps: Caps,
) -> Result<Value, Unreadable> {
    let files = match members(bytes, caps)? {
        Ok(files) => files,
        Err(reason) => return Ok(json!({ "ok": false, "failures": [reason] })),
    };
    let mut failures: Vec<String> = Vec::new();
    let missing: Vec<&str> = [
        "manifest.json",
        "entries.jsonl",
        "checkpoints.jsonl",
        "jwks.json",
    ]
    .into_iter()
    .filter(|name| !files.contains_key(*name))
    .collect();
    if !missing.is_empty() {
        return Ok(json!({ "ok": false, "failures": [format!("missing {}", missing.join(", "))] }));
    }
    let text = |name: &str| files.get(name).map(String::as_str).unwrap_or_default();
    let manifest: Value = match serde_json::from_str(text("manifest.json")) {
        Ok(m) => m,
        Err(e) => return Ok(json!({ "ok": false, "failures": [format!("manifest.json: {e}")] })),
    };
    if manifest["format"] != FORMAT || manifest["version"] != 1 {
        return Ok(json!({ "ok": false,
            "failures": [format!("manifest.json: not a `{FORMAT}` version 1")] }));
    }
    let Some(org) = manifest["organization"].as_str().map(str::to_owned) else {
        return Ok(json!({ "ok": false, "failures": ["manifest.json: no organization"] }));
    };
    let own_store;
    let store = match trust {
        Some(store) => store,
        None => match TrustStore::from_document(text("jwks.json")) {
            Ok(store) => {
                own_store = store;
                &own_store
            }
            Err(e) => {
                return Ok(json!({ "ok": false, "failures": [format!("jwks.json: {e}")] }));
            }
        },
    };

    // The entries: each one's hash, their order, and their links where seqs follow.
    let mut entries: Vec<(i64, String)> = Vec::new();
    for (n, line) in text("entries.jsonl").lines().enumerate() {
        let entry: PackagedEntry = match serde_json::from_str(line) {
            Ok(entry) => entry,
            Err(e) => {
                failures.push(format!("entries.jsonl line {}: {e}", n + 1));
                continue;
            }
        };
        if entry.organization_id.as_deref() != Some(org.as_str()) {
            failures.push(format!(
                "entry {}: of another organization than the package's",
                entry.seq
            ));
        }
        let expected = entry_hash(
            entry.seq,
            entry.at,
            entry.organization_id.as_deref(),
            &entry.actor,
            &entry.action,
            &entry.target,
            entry.status,
            &entry.prev_hash,
        );
        if expected != entry.hash {
            failures.push(format!(
                "entry {}: its hash does not match its columns (altered)",
                entry.seq
            ));
        }
        if let Some((seq, hash)) = entries.last() {
            if entry.seq <= *seq {
                failures.push(format!("entry {}: out of order after {seq}", entry.seq));
            } else if entry.seq == seq + 1 && entry.prev_hash != *hash {
                failures.push(format!(
                    "entry {}: prev_hash is not the hash of entry {seq}",
                    entry.seq
                ));
            }
        }
        entries.push((entry.seq, expected));
    }

    // The checkpoints: signature, scope, organization; then their ranges' digests.
    let mut covered_up_to: Option<i64> = None;
    let mut covered_from: Option<i64> = None;
    let mut verified = 0usize;
    for (n, line) in text("checkpoints.jsonl").lines().enumerate() {
        let packaged: PackagedCheckpoint = match serde_json::from_str(line) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("checkpoints.jsonl line {}: {e}", n + 1));
                continue;
            }
        };
        let id = packaged.id;
        let claims: AuditCheckpointClaims = match verify_audit_checkpoint(&packaged.token, store) {
            Ok((_, claims)) => claims,
            Err(e) => {
                failures.push(format!(
                    "checkpoint {id}: refused ({}): {e}",
                    e.status().as_str()
                ));
                continue;
            }
        };
        if claims.scope != SCOPE_ORGANIZATION || claims.org.as_deref() != Some(org.as_str()) {
            failures.push(format!(
                "checkpoint {id}: not a checkpoint of organization {org}"
            ));
            continue;
        }
        let prev = claims.prev_seq.unwrap_or(0);
        let range: Vec<&(i64, String)> = entries
            .iter()
            .filter(|(seq, _)| *seq > prev && *seq <= claims.seq)
            .collect();
        let digest = fold_digest(
            claims.prev_digest.as_deref().unwrap_or_default(),
            range.iter().map(|(seq, hash)| (*seq, hash.as_str())),
        );
        let count = i64::try_from(range.len()).unwrap_or(i64::MAX);
        let last_matches = range
            .last()
            .is_some_and(|(seq, hash)| *seq == claims.seq && *hash == claims.hash);
        if count != claims.entries.unwrap_or(-1) || Some(&digest) != claims.digest.as_ref() {
            failures.push(format!(
                "checkpoint {id}: the entries with {prev} < seq <= {} do not match the digest \
                 it signed ({count} in the package, {} signed): an entry was altered, removed \
                 or added",
                claims.seq,
                claims.entries.unwrap_or(0)
            ));
            continue;
        }
        if !last_matches {
            failures.push(format!(
                "checkpoint {id}: entry {} is not the one it signed",
                claims.seq
            ));
            continue;
        }
        verified += 1;
        covered_up_to = Some(covered_up_to.map_or(claims.seq, |c| c.max(claims.seq)));
        covered_from = Some(covered_from.map_or(prev, |c| c.min(prev)));
    }
    let uncovered: Vec<i64> = entries
        .iter()
        .map(|(seq, _)| *seq)
        .filter(|seq| match (covered_from, covered_up_to) {
            (Some(lo), Some(hi)) => *seq <= lo || *seq > hi,
            _ => true,
        })
        .collect();
    if require_covered && !uncovered.is_empty() {
        failures.push(format!(
            "{} entries are covered by no checkpoint (--require-covered)",
            uncovered.len()
        ));
    }
    Ok(json!({
        "ok": failures.is_empty(),
        "organization": org,
        "entries": entries.len(),
        "checkpoints_verified": verified,
        "covered": uncovered.is_empty() && !entries.is_empty(),
        "covered_up_to": covered_up_to,
        "uncovered": {
            "count": uncovered.len(),
            "seqs": uncovered.iter().take(LISTED).collect::<Vec<_>>(),
        },
        "failures": failures,
    }))
}
