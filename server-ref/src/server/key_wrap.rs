//! Signing keys at rest: the server's private signing keys are sealed, in the database
//! (`signing_keys.private_pem`) and in the data directory's `signing-key.pem`, with a
//! key-encryption key (KEK) the database does not hold.
//!
//! - **The KEK** comes from `LICENSING_KEY_ENCRYPTION_KEY` (base64 of 32 bytes) or from
//!   `--key-encryption-key-file FILE` (the same text; the file must not be readable by group or
//!   others). With `--key-unwrap-command CMD` (a KMS or HSM hook), that value is instead the
//!   KEK *as wrapped by the KMS*: `sh -c CMD` receives it on stdin and prints the KEK (base64,
//!   or 32 raw bytes) on stdout, within [`UNWRAP_TIMEOUT`] and [`MAX_UNWRAP_OUTPUT`] bytes. The
//!   KMS is called once, at startup; the KEK then lives in this process's memory only.
//! - **Sealing**: AES-256-GCM (ring), a random 96-bit nonce per seal, the associated data binding
//!   the key's kid (a sealed key moved to another row does not open). Stored as
//!   `lkw1:<kid>:<nonce, base64url>:<ciphertext and tag, base64url>`.
//! - **Without a KEK** nothing changes: keys are stored as plaintext PKCS#8 PEM (and a sealed
//!   key cannot be used: the server refuses to start, naming what it needs).
//! - **Migration**: `serve` with a KEK seals every plaintext key (rows and the data-directory
//!   file) at startup, after checking that every key sealed already opens with this KEK (a wrong
//!   KEK overwrites nothing).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

/// The environment variable holding the KEK (or, with an unwrap command, the wrapped KEK).
pub(crate) const KEK_ENV: &str = "LICENSING_KEY_ENCRYPTION_KEY";

/// How long the unwrap command may run.
pub(crate) const UNWRAP_TIMEOUT: Duration = Duration::from_secs(30);

/// Most bytes read from the unwrap command's output.
pub(crate) const MAX_UNWRAP_OUTPUT: u64 = 4096;

/// Largest KEK file (or wrapped KEK) read.
const MAX_KEK_FILE: u64 = 64 * 1024;

/// The prefix of a sealed key.
const PREFIX: &str = "lkw1:";

/// What the server needs for a sealed key, for error messages.
pub(crate) const NEEDS_KEK: &str = "set LICENSING_KEY_ENCRYPTION_KEY, --key-encryption-key-file \
                                    or --key-unwrap-command as the server that sealed it";

/// Where the KEK comes from: the settings (`--key-encryption-key-file`,
/// `--key-unwrap-command`); the environment variable is read by [`load`].
#[derive(clap::Args, Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyEncryptionArgs {
    /// File holding the key-encryption key that seals the signing keys at rest (base64 of 32
    /// bytes; mode 0600). Or `LICENSING_KEY_ENCRYPTION_KEY` holds it. Without either, the
    /// signing keys are stored in plaintext.
    #[arg(long, env = "LICENSING_KEY_ENCRYPTION_KEY_FILE")]
    pub key_encryption_key_file: Option<PathBuf>,
    /// KMS/HSM hook: a shell command that receives the wrapped key-encryption key (the content
    /// of `--key-encryption-key-file` or `LICENSING_KEY_ENCRYPTION_KEY`) on stdin and prints
    /// the key (base64, or 32 raw bytes); run once at startup, 30 s at most.
    #[arg(long, env = "LICENSING_KEY_UNWRAP_COMMAND")]
    pub key_unwrap_command: Option<String>,
}

/// The key-encryption key.
pub(crate) struct Kek(LessSafeKey);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(..)")
    }
}

/// Whether `stored` is a sealed key (else plaintext PEM).
pub(crate) fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

fn aad(kid: &str) -> Vec<u8> {
    let mut aad = b"licensing-server signing key\0".to_vec();
    aad.extend_from_slice(kid.as_bytes());
    aad
}

impl Kek {
    /// A KEK of exactly 32 bytes.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Kek, String> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| {
            format!(
                "the key-encryption key must be 32 bytes, not {}",
                bytes.len()
            )
        })?;
        Ok(Kek(LessSafeKey::new(key)))
    }

    /// A KEK written as base64 (standard or URL-safe, padding optional; spaces around ignored).
    pub(crate) fn from_base64(what: &str, text: &str) -> Result<Kek, String> {
        let text = text.trim();
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
                .map_err(|_| format!("{what}: not base64"))?,
        );
        Kek::from_bytes(&bytes).map_err(|e| format!("{what}: {e}"))
    }

    /// Seals the PKCS#8 PEM of key `kid`.
    pub(crate) fn seal(&self, kid: &str, pem: &str) -> Result<String, String> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| format!("CSPRNG: {e}"))?;
        let mut sealed = pem.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(kid)),
                &mut sealed,
            )
            .map_err(|_| "sealing a signing key failed".to_owned())?;
        Ok(format!(
            "{PREFIX}{kid}:{}:{}",
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(&sealed)
        ))
    }

    /// Opens a sealed key; `kid` is the key it must be (the row's, or `None` for the one the
    /// seal names, as for the data-directory file).
    pub(crate) fn open(
        &self,
        kid: Option<&str>,
        stored: &str,
    ) -> Result<Zeroizing<String>, String> {
        let (named, nonce, sealed) = parse(stored)?;
        let kid = kid.unwrap_or(named);
        if named != kid {
            return Err(format!("signing key {kid}: the sealed key names {named}"));
        }
        let mut bytes = Zeroizing::new(sealed);
        let plain = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(kid)),
                &mut bytes,
            )
            .map_err(|_| {
                format!(
                    "signing key {kid}: it does not open with this key-encryption key (a wrong \
                     key, or the stored key was altered)"
                )
            })?;
        let text = std::str::from_utf8(plain)
            .map_err(|_| format!("signing key {kid}: not PEM once opened"))?;
        Ok(Zeroizing::new(text.to_owned()))
    }
}

fn parse(stored: &str) -> Result<(&str, [u8; NONCE_LEN], Vec<u8>), String> {
    let bad = || "a sealed signing key is malformed".to_owned();
    let rest = stored.trim().strip_prefix(PREFIX).ok_or_else(bad)?;
    let mut parts = rest.split(':');
    let (Some(kid), Some(nonce), Some(sealed), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let nonce: [u8; NONCE_LEN] = URL_SAFE_NO_PAD
        .decode(nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(bad)?;
    let sealed = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| bad())?;
    Ok((kid, nonce, sealed))
}

/// The plaintext PEM of a stored key: itself when plaintext, opened with `kek` when sealed (an
/// error naming what is needed without one).
pub(crate) fn open_stored(
    kek: Option<&Kek>,
    kid: Option<&str>,
    stored: &str,
) -> Result<Zeroizing<String>, String> {
    if !is_sealed(stored) {
        return Ok(Zeroizing::new(stored.to_owned()));
    }
    match kek {
        Some(kek) => kek.open(kid, stored),
        None => Err(format!(
            "signing key {} is encrypted at rest and this server has no key-encryption key: \
             {NEEDS_KEK}",
            kid.unwrap_or("in the key file")
        )),
    }
}

/// What to store for key `kid`: sealed with `kek`, or the plaintext PEM without one.
pub(crate) fn seal_for_storage(kek: Option<&Kek>, kid: &str, pem: &str) -> Result<String, String> {
    match kek {
        Some(kek) => kek.seal(kid, pem),
        None => Ok(pem.to_owned()),
    }
}

/// The KEK the settings and the environment name, if any.
pub(crate) fn load(args: &KeyEncryptionArgs) -> Result<Option<Kek>, String> {
    let env = std::env::var(KEK_ENV).ok().filter(|v| !v.trim().is_empty());
    let (what, value) = match (&args.key_encryption_key_file, env) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "both {KEK_ENV} and --key-encryption-key-file are set: use one"
            ));
        }
        (Some(path), None) => (
            format!("--key-encryption-key-file {}", path.display()),
            read_kek_file(path)?,
        ),
        (None, Some(value)) => (KEK_ENV.to_owned(), Zeroizing::new(value.into_bytes())),
        (None, None) => {
            if args.key_unwrap_command.is_some() {
                return Err(format!(
                    "--key-unwrap-command needs the wrapped key in --key-encryption-key-file or \
                     {KEK_ENV}"
                ));
            }
            return Ok(None);
        }
    };
    let kek = match &args.key_unwrap_command {
        None => {
            let text = std::str::from_utf8(&value).map_err(|_| format!("{what}: not base64"))?;
            Kek::from_base64(&what, text)?
        }
        Some(command) => {
            let out = run_unwrap(command, &value)?;
            if out.len() == 32 {
                Kek::from_bytes(&out)?
            } else {
                let text = std::str::from_utf8(&out)
                    .map_err(|_| "--key-unwrap-command: its output is not base64".to_owned())?;
                Kek::from_base64("--key-unwrap-command output", text)?
            }
        }
    };
    Ok(Some(kek))
}

fn read_kek_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    let fail = |e: String| format!("--key-encryption-key-file {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file
            .metadata()
            .map_err(|e| fail(e.to_string()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(fail(format!(
                "mode {:o} lets group or others read it; chmod 600 it",
                mode & 0o777
            )));
        }
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_KEK_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_KEK_FILE {
        return Err(fail(format!("larger than {MAX_KEK_FILE} bytes")));
    }
    Ok(bytes)
}

/// Runs the unwrap command: `input` on its stdin, its stdout (at most [`MAX_UNWRAP_OUTPUT`]
/// bytes) back, within [`UNWRAP_TIMEOUT`]; killed past it.
fn run_unwrap(command: &str, input: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    use std::process::{Command, Stdio};
    let fail = |e: String| format!("--key-unwrap-command: {e}");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    let mut stdin = child.stdin.take().ok_or_else(|| fail("no stdin".into()))?;
    let input = Zeroizing::new(input.to_vec());
    let writer = std::thread::spawn(move || {
        // A command that does not read its input is not an error here.
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| fail("no stdout".into()))?;
    let reader = std::thread::spawn(move || {
        let mut out = Zeroizing::new(Vec::new());
        let read = (&mut stdout)
            .take(MAX_UNWRAP_OUTPUT + 1)
            .read_to_end(&mut out);
        read.map(|_| out)
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < UNWRAP_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "still running after {} s; killed",
                    UNWRAP_TIMEOUT.as_secs()
                )));
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    };
    let _ = writer.join();
    let out = reader
        .join()
        .map_err(|_| fail("reading its output failed".into()))?
        .map_err(|e| fail(e.to_string()))?;
    // (A command cut off by its output's cap dies of SIGPIPE: the cap is its error.)
    if out.len() as u64 > MAX_UNWRAP_OUTPUT {
        return Err(fail(format!(
            "it printed more than {MAX_UNWRAP_OUTPUT} bytes"
        )));
    }
    if !status.success() {
        return Err(fail(format!("it failed ({status})")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str =
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";

    fn kek(byte: u8) -> Kek {
        Kek::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn a_sealed_key_opens_with_its_kek_and_kid_only() {
        let sealed = kek(1).seal("kid-a", PEM).unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("PRIVATE KEY"));
        assert!(!sealed.contains("MC4CAQAwBQYDK2VwBCIEIA"));
        assert_eq!(kek(1).open(Some("kid-a"), &sealed).unwrap().as_str(), PEM);
        assert_eq!(kek(1).open(None, &sealed).unwrap().as_str(), PEM);
        // Another KEK, another row's kid, a kid rewritten in the seal, an altered byte.
        assert!(kek(2).open(Some("kid-a"), &sealed).is_err());
        assert!(kek(1).open(Some("kid-b"), &sealed).is_err());
        let renamed = sealed.replacen("kid-a", "kid-b", 1);
        assert!(kek(1).open(Some("kid-b"), &renamed).is_err());
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert!(kek(1).open(Some("kid-a"), &altered).is_err());
        // Two seals of one key differ (fresh nonces).
        assert_ne!(kek(1).seal("kid-a", PEM).unwrap(), sealed);
    }

    #[test]
    fn without_a_kek_plaintext_passes_and_a_sealed_key_is_refused() {
        assert_eq!(open_stored(None, Some("k"), PEM).unwrap().as_str(), PEM);
        assert_eq!(seal_for_storage(None, "k", PEM).unwrap(), PEM);
        let sealed = seal_for_storage(Some(&kek(1)), "k", PEM).unwrap();
        let e = open_stored(None, Some("k"), &sealed).unwrap_err();
        assert!(
            e.contains("encrypted at rest") && e.contains(KEK_ENV),
            "{e}"
        );
    }

    #[test]
    fn the_kek_must_be_32_bytes_of_base64() {
        let good = STANDARD.encode([7u8; 32]);
        assert!(Kek::from_base64("x", &format!(" {good}\n")).is_ok());
        assert!(Kek::from_base64("x", &URL_SAFE_NO_PAD.encode([7u8; 32])).is_ok());
        assert!(Kek::from_base64("x", &STANDARD.encode([7u8; 16])).is_err());
        assert!(Kek::from_base64("x", "not base64!").is_err());
    }

    #[test]
    fn the_unwrap_command_is_bounded() {
        let good = STANDARD.encode([9u8; 32]);
        let out = run_unwrap("sed s/^wrapped://", format!("wrapped:{good}").as_bytes()).unwrap();
        assert_eq!(std::str::from_utf8(&out).unwrap().trim(), good);
        let e = run_unwrap("head -c 100000 /dev/zero", b"").unwrap_err();
        assert!(e.contains("more than"), "{e}");
        let e = run_unwrap("exit 3", b"").unwrap_err();
        assert!(e.contains("failed"), "{e}");
    }
}
