//! Random identifiers, license keys, API tokens and their hashes, and the signing key file.

use std::fs;
use std::io::Write;
use std::path::Path;

use licensing_core::PrivateKey;
use sha2::{Digest, Sha256};

/// 32 symbols, none easily confused when typed or read aloud (no I, O, 0, 1).
const KEY_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Symbols in a license key: 25 × 5 bits = 125 bits from the CSPRNG.
const KEY_SYMBOLS: usize = 25;
/// Symbols per dash-separated group.
const KEY_GROUP: usize = 5;

/// `n` random symbols from [`KEY_ALPHABET`] (each from one CSPRNG byte: 256 is a multiple of
/// 32, so every symbol is equally likely).
fn random_symbols(n: usize) -> Result<String, String> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| format!("CSPRNG: {e}"))?;
    Ok(bytes
        .iter()
        .map(|b| char::from(KEY_ALPHABET[usize::from(b & 31)]))
        .collect())
}

/// A new id with a type prefix, e.g. `lic_7KQ2...` (100 random bits).
pub(crate) fn new_id(prefix: &str) -> Result<String, String> {
    Ok(format!(
        "{prefix}_{}",
        random_symbols(20)?.to_ascii_lowercase()
    ))
}

/// A new random salt (128 bits, lowercase hex), e.g. for an audit event's subject
/// commitment.
pub(crate) fn new_salt() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("CSPRNG: {e}"))?;
    Ok(base16ct::lower::encode_string(&bytes))
}

/// A new license key, `XXXXX-XXXXX-XXXXX-XXXXX-XXXXX`.
pub(crate) fn new_license_key() -> Result<String, String> {
    Ok(group(&random_symbols(KEY_SYMBOLS)?))
}

fn group(symbols: &str) -> String {
    symbols
        .as_bytes()
        .chunks(KEY_GROUP)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// The canonical form of a typed license key: case, spaces and dashes forgiven. `None` when it
/// cannot be a key.
pub(crate) fn canonical_license_key(typed: &str) -> Option<String> {
    if typed.len() > 64 {
        return None;
    }
    let symbols: String = typed
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let valid = symbols.len() == KEY_SYMBOLS && symbols.bytes().all(|b| KEY_ALPHABET.contains(&b));
    valid.then(|| group(&symbols))
}

/// A new machine deactivation key: 32 bytes from the CSPRNG, base64url (offline
/// deactivation receipts are MAC'd with it).
pub(crate) fn new_deactivation_key() -> Result<String, String> {
    let mut key = [0u8; licensing_core::deactivation::DEACTIVATION_KEY_BYTES];
    getrandom::fill(&mut key).map_err(|e| format!("CSPRNG: {e}"))?;
    Ok(licensing_core::deactivation::encode_deactivation_key(&key))
}

/// A new bearer API token (`lst_` + 200 random bits).
pub(crate) fn new_api_token() -> Result<String, String> {
    Ok(format!("lst_{}", random_symbols(40)?.to_ascii_lowercase()))
}

/// A new OAuth 2.0 client secret (`lsc_` + 200 random bits). Stored only as its SHA-256.
pub(crate) fn new_client_secret() -> Result<String, String> {
    Ok(format!("lsc_{}", random_symbols(40)?.to_ascii_lowercase()))
}

/// A new lease secret (`lss_` + 260 random bits): proof that a heartbeat or check-in comes
/// from the instance that checked the lease out. Stored only as its SHA-256.
pub(crate) fn new_lease_secret() -> Result<String, String> {
    Ok(format!("lss_{}", random_symbols(52)?.to_ascii_lowercase()))
}

/// The id of the denial of one check-out request: the same for every retry of it (same license,
/// client and request id), so a retried request is recorded as denied once, not once per try.
pub(crate) fn denial_id(license_id: &str, client_id: &str, request_id: &str) -> String {
    // Each part is length-prefixed so that no two triples hash the same bytes.
    let mut hash = Sha256::new();
    for part in [license_id, client_id, request_id] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let hex = base16ct::lower::encode_string(&hash.finalize());
    format!("dny_{}", &hex[..32])
}

/// SHA-256, lowercase hex: how tokens and license keys are stored.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    base16ct::lower::encode_string(&Sha256::digest(bytes))
}

/// Loads the signing key from `path` (PKCS#8 PEM, or sealed with `kek`), or, when `create` and
/// the file is missing, generates one and writes it there (mode 0600; sealed with `kek` when
/// there is one, else PKCS#8 PEM). Returns the key and whether it was created.
pub(crate) fn load_or_create_signing_key(
    path: &Path,
    create: bool,
    kek: Option<&super::key_wrap::Kek>,
) -> Result<(PrivateKey, bool), String> {
    match fs::File::open(path) {
        Ok(file) => {
            let name = path.display().to_string();
            let bytes = crate::cli_input::read_capped_from(
                "--signing-key",
                &name,
                file,
                crate::cli_input::KEY_CAP,
            )?;
            let text = crate::cli_input::into_text("--signing-key", &name, bytes)?;
            warn_if_readable_by_others(path);
            let pem = super::key_wrap::open_stored(kek, None, text.trim())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let key =
                PrivateKey::from_pkcs8_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok((key, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let key = PrivateKey::generate().map_err(|e| e.to_string())?;
            let pem = key.to_pkcs8_pem().map_err(|e| e.to_string())?;
            let stored = match kek {
                Some(kek) => format!("{}\n", kek.seal(key.public_key().kid(), &pem)?),
                None => pem.to_string(),
            };
            write_private(path, stored.as_bytes())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok((key, true))
        }
        Err(e) => Err(format!("signing key {}: {e}", path.display())),
    }
}

/// Seals the data directory's key file `path` with `kek` when it holds a plaintext key: a sealed
/// copy (0600) is renamed over it. A missing file, a sealed one, or no `kek`: nothing to do.
pub(crate) fn seal_key_file(path: &Path, kek: Option<&super::key_wrap::Kek>) -> Result<(), String> {
    let Some(kek) = kek else { return Ok(()) };
    let fail = |e: String| format!("sealing the key file {}: {e}", path.display());
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(fail(e.to_string())),
    };
    let name = path.display().to_string();
    let bytes = crate::cli_input::read_capped_from(
        "--signing-key",
        &name,
        file,
        crate::cli_input::KEY_CAP,
    )?;
    let text = zeroize::Zeroizing::new(crate::cli_input::into_text("--signing-key", &name, bytes)?);
    if super::key_wrap::is_sealed(text.trim()) {
        return Ok(());
    }
    let key = PrivateKey::from_pkcs8_pem(&text).map_err(|e| fail(e.to_string()))?;
    let sealed = kek.seal(key.public_key().kid(), &text)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail(e.to_string()))?;
    tmp.write_all(format!("{sealed}\n").as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| fail(e.to_string()))?;
    tmp.persist(path).map_err(|e| fail(e.to_string()))?;
    tracing::info!(path = %path.display(), "sealed the signing key file with the key-encryption key");
    Ok(())
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "the signing key file is accessible to group or others; chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

/// Writes a new file readable by its owner only (created with that mode, never replaced).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored hashes (license keys, API tokens) are lowercase hex of SHA-256 (FIPS 180-2 "abc").
    #[test]
    fn sha256_hex_is_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn license_keys_are_grouped_typeable_and_canonicalized() {
        let key = new_license_key().unwrap();
        assert_eq!(key.len(), 29);
        assert_eq!(key.matches('-').count(), 4);
        assert_eq!(canonical_license_key(&key).as_deref(), Some(key.as_str()));
        let sloppy = format!(" {} ", key.to_ascii_lowercase().replace('-', " "));
        assert_eq!(
            canonical_license_key(&sloppy).as_deref(),
            Some(key.as_str())
        );
        assert_ne!(new_license_key().unwrap(), key);
        for bad in [
            "",
            "ABCDE",
            "IIIII-OOOOO-00000-11111-AAAAA",
            &format!("{key}-A"),
        ] {
            assert_eq!(canonical_license_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_tokens_and_hashes() {
        let id = new_id("lic").unwrap();
        assert!(id.starts_with("lic_") && id.len() == 24, "{id}");
        let token = new_api_token().unwrap();
        assert!(token.starts_with("lst_") && token.len() == 44);
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
