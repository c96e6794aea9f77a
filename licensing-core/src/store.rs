//! The license store (feature `store`): the token and the sealed clock mark in the platform's
//! data directory, written atomically (temp file, fsync, rename, fsync of the directory) under
//! a lock file so several processes of one app never corrupt it.
//!
//! On Unix the directory is private to its owner (mode 0700, tightened when an existing one is
//! wider) and every file the store creates is 0600, whatever the process umask: the license
//! key and tokens are not for other local users, and no other user can open the lock file.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::jws::MAX_TOKEN_BYTES;

const TOKEN_FILE: &str = "license.jwt";
const CLOCK_FILE: &str = "clock.json";
const LOCK_FILE: &str = ".lock";
/// The license key, kept after an online activation for later validations.
const KEY_FILE: &str = "license.key";
/// The machine token of the activation.
const MACHINE_FILE: &str = "machine.jwt";
/// The last signed server answer that said the license is not active (suspended, revoked...),
/// kept so an offline start reports it too; removed when the server says active again.
pub(crate) const RESPONSE_FILE: &str = "response.jwt";
/// A pending air-gapped activation request (its nonce is what the response must echo).
const PENDING_FILE: &str = "offline-request.json";
/// The lease token of a seat borrowed from a floating license (usable offline until its `exp`).
const BORROWED_FILE: &str = "borrowed-lease.jwt";
/// The machine's deactivation key (secret: an offline deactivation receipt is MAC'd with it).
const DEACTIVATION_KEY_FILE: &str = "deactivation.key";
/// The last offline deactivation receipt written (kept after the license is removed, so a
/// receipt the app failed to save can be read again; not removed by [`LicenseStore::clear`]).
const RECEIPT_FILE: &str = "offline-deactivation.json";
/// The secret of the borrowed seat's lease (proof of holding it, to return it early); 0600.
const BORROWED_SECRET_FILE: &str = "borrowed-lease.secret";
/// Largest license key or pending request read.
const MAX_SMALL_BYTES: u64 = 16 * 1024;
/// Largest clock-state file read; the real one is under 200 bytes.
const MAX_CLOCK_BYTES: u64 = 4 * 1024;
/// How long taking the store's lock waits by default before giving up
/// ([`StoreError::Locked`]); a startup check or an installation holds it for milliseconds.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// The mode of the store's directory on Unix: the owner only.
#[cfg(unix)]
const DIR_MODE: u32 = 0o700;
/// The mode of every file the store creates on Unix: the owner only.
#[cfg(unix)]
const FILE_MODE: u32 = 0o600;

/// Whose data directory holds the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum Scope {
    /// The user's data directory (`~/.local/share/<app>`, `~/Library/Application Support/<id>`,
    /// `%APPDATA%\<org>\<app>\data`).
    User,
    /// The machine-wide directory (`/var/lib/<app>`, `/Library/Application Support/<id>`,
    /// `%ProgramData%\<org>\<app>`); writing it usually needs an installer with privileges.
    Machine,
}

/// Why the store could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No data directory could be determined (no home directory).
    #[error("no data directory for this user")]
    NoDataDir,
    /// The store's lock was held by someone else (another process of the app, or a process
    /// that should not hold it) for longer than the lock timeout; nothing was read or written.
    #[error("{path}: the license store is locked by another process (waited {waited:?})")]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// How long the lock was waited for.
        waited: Duration,
    },
    /// A stored file is not what the store writes (too large, not UTF-8).
    #[error("{path}: corrupt: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A directory holding one app's license token and clock state.
#[derive(Debug, Clone)]
pub struct LicenseStore {
    dir: PathBuf,
    lock_timeout: Duration,
}

/// An exclusive lock on the store, released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl LicenseStore {
    /// A store in `dir`, created if missing. On Unix the directory is created with mode 0700
    /// (the missing parents too), and an existing one that the process owns is tightened to
    /// 0700 when group or others have any access.
    pub fn at(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        create_private_dir(&dir)?;
        Ok(LicenseStore {
            dir,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        })
    }

    /// How long [`Self::lock`] (and so every installation, startup check and clear) waits for
    /// a lock held elsewhere before it fails with [`StoreError::Locked`]; default
    /// [`DEFAULT_LOCK_TIMEOUT`].
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The platform's data directory for this app.
    pub fn for_app(
        qualifier: &str,
        organization: &str,
        application: &str,
        scope: Scope,
    ) -> Result<Self, StoreError> {
        let dir = match scope {
            Scope::User => directories::ProjectDirs::from(qualifier, organization, application)
                .ok_or(StoreError::NoDataDir)?
                .data_dir()
                .to_owned(),
            Scope::Machine => machine_dir(qualifier, organization, application)?,
        };
        Self::at(dir)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the store's exclusive lock for a read-modify-write, waiting at most the lock
    /// timeout ([`Self::with_lock_timeout`]) for a holder elsewhere to release it:
    /// [`StoreError::Locked`] past it, never an endless wait.
    pub fn lock(&self) -> Result<StoreLock, StoreError> {
        let path = self.dir.join(LOCK_FILE);
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).write(true);
        private_file(&mut options);
        let file = options.open(&path).map_err(io(&path))?;
        // A lock file an earlier release created under a lax umask: tightened when ours
        // (best effort: the lock works either way, and the directory is private).
        let _ = set_private(&file);
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(StoreLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
            }
            let waited = started.elapsed();
            if waited >= self.lock_timeout {
                return Err(StoreError::Locked { path, waited });
            }
            std::thread::sleep(pause.min(self.lock_timeout - waited));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// The stored token, if any.
    pub fn read_token(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .read_capped(TOKEN_FILE, MAX_TOKEN_BYTES as u64)?
            .map(|t| t.trim().to_owned()))
    }

    /// Replaces the stored token atomically.
    pub fn write_token(&self, token: &str) -> Result<(), StoreError> {
        self.write_atomic(TOKEN_FILE, token.as_bytes())
    }

    /// The license key stored by an online activation, if any.
    pub fn read_license_key(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .read_capped(KEY_FILE, MAX_SMALL_BYTES)?
            .map(|t| t.trim().to_owned()))
    }

    /// Stores the license key (online activation).
    pub fn write_license_key(&self, key: &str) -> Result<(), StoreError> {
        self.write_atomic(KEY_FILE, key.as_bytes())
    }

    /// The machine token of the activation, if any.
    pub fn read_machine_token(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .read_capped(MACHINE_FILE, MAX_TOKEN_BYTES as u64)?
            .map(|t| t.trim().to_owned()))
    }

    /// Stores the machine token of the activation.
    pub fn write_machine_token(&self, token: &str) -> Result<(), StoreError> {
        self.write_atomic(MACHINE_FILE, token.as_bytes())
    }

    /// The last signed server answer saying the license is not active, if any.
    pub fn read_server_response(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .read_capped(RESPONSE_FILE, MAX_TOKEN_BYTES as u64)?
            .map(|t| t.trim().to_owned()))
    }

    /// Stores a signed server answer saying the license is not active; `None` removes it (the
    /// server said active).
    pub fn write_server_response(&self, token: Option<&str>) -> Result<(), StoreError> {
        self.write_or_remove(RESPONSE_FILE, token)
    }

    /// The pending air-gapped activation request (JSON), if any.
    pub fn read_pending_request(&self) -> Result<Option<String>, StoreError> {
        self.read_capped(PENDING_FILE, MAX_SMALL_BYTES)
    }

    /// Stores the pending air-gapped activation request; `None` removes it (imported).
    pub fn write_pending_request(&self, json: Option<&str>) -> Result<(), StoreError> {
        self.write_or_remove(PENDING_FILE, json)
    }

    /// The lease token of the borrowed seat, if any.
    pub fn read_borrowed_lease(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .read_capped(BORROWED_FILE, MAX_TOKEN_BYTES as u64)?
            .map(|t| t.trim().to_owned()))
    }

    /// Stores the lease token of a borrowed seat; `None` removes it (returned), and its
    /// secret with it.
    pub fn write_borrowed_lease(&self, token: Option<&str>) -> Result<(), StoreError> {
        if token.is_none() {
            self.remove(BORROWED_SECRET_FILE)?;
        }
        self.write_or_remove(BORROWED_FILE, token)
    }

    /// The machine's deactivation key (base64url), if any.
    pub fn read_deactivation_key(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .read_capped(DEACTIVATION_KEY_FILE, MAX_SMALL_BYTES)?
            .map(|t| t.trim().to_owned()))
    }

    /// Stores the machine's deactivation key (file mode 0600); `None` removes it.
    pub fn write_deactivation_key(&self, key: Option<&str>) -> Result<(), StoreError> {
        self.write_or_remove(DEACTIVATION_KEY_FILE, key)
    }

    /// The last offline deactivation receipt (JSON), if any.
    pub fn read_deactivation_receipt(&self) -> Result<Option<String>, StoreError> {
        self.read_capped(RECEIPT_FILE, MAX_SMALL_BYTES)
    }

    /// Stores an offline deactivation receipt; `None` removes it (handed over).
    pub fn write_deactivation_receipt(&self, json: Option<&str>) -> Result<(), StoreError> {
        self.write_or_remove(RECEIPT_FILE, json)
    }

    /// The secret of the borrowed seat's lease, if one is stored.
    pub fn read_borrowed_secret(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .read_capped(BORROWED_SECRET_FILE, MAX_SMALL_BYTES)?
            .map(|t| t.trim().to_owned()))
    }

    /// Stores the secret of a borrowed seat's lease (owner-only, 0600 on Unix, whatever the
    /// umask); `None` removes it. Written before its token, so a stored token has its secret.
    pub fn write_borrowed_secret(&self, secret: Option<&str>) -> Result<(), StoreError> {
        self.write_or_remove(BORROWED_SECRET_FILE, secret)
    }

    /// Replaces `name` atomically with `text`; `None` removes it.
    fn write_or_remove(&self, name: &str, text: Option<&str>) -> Result<(), StoreError> {
        match text {
            Some(text) => self.write_atomic(name, text.as_bytes()),
            None => self.remove(name),
        }
    }

    fn remove(&self, name: &str) -> Result<(), StoreError> {
        let path = self.dir.join(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
            _ => Ok(()),
        }
    }

    /// Removes the token, the clock state, what online activation stored (deactivation), and a
    /// borrowed seat's token (the seat then stays taken on the server until its expiry: return
    /// it first, `Licensing::return_seat`). Takes the store's lock, so it waits for a startup
    /// check or an install in another thread or process to finish (do not hold [`Self::lock`]
    /// while calling it).
    pub fn clear(&self) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        self.clear_unlocked()
    }

    /// [`Self::clear`] for a caller that holds the lock. A pending offline deactivation
    /// receipt is kept.
    pub(crate) fn clear_unlocked(&self) -> Result<(), StoreError> {
        for name in [
            TOKEN_FILE,
            CLOCK_FILE,
            KEY_FILE,
            MACHINE_FILE,
            RESPONSE_FILE,
            PENDING_FILE,
            BORROWED_FILE,
            DEACTIVATION_KEY_FILE,
            BORROWED_SECRET_FILE,
        ] {
            self.remove(name)?;
        }
        Ok(())
    }

    /// The sealed clock state, if any.
    pub fn read_clock(&self) -> Result<Option<String>, StoreError> {
        self.read_capped(CLOCK_FILE, MAX_CLOCK_BYTES)
    }

    /// Replaces the sealed clock state atomically.
    pub fn write_clock(&self, sealed: &str) -> Result<(), StoreError> {
        self.write_atomic(CLOCK_FILE, sealed.as_bytes())
    }

    fn read_capped(&self, name: &str, cap: u64) -> Result<Option<String>, StoreError> {
        let path = self.dir.join(name);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let mut bytes = Vec::new();
        file.take(cap + 1)
            .read_to_end(&mut bytes)
            .map_err(io(&path))?;
        if bytes.len() as u64 > cap {
            return Err(StoreError::Corrupt {
                path,
                detail: format!("larger than {cap} bytes"),
            });
        }
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| StoreError::Corrupt {
                path,
                detail: "not UTF-8".into(),
            })
    }

    /// Temp file in the same directory, fsync, rename over the target, fsync the directory:
    /// a crash at any point leaves either the old or the new file, never a torn one.
    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let target = self.dir.join(name);
        let mut suffix = [0u8; 8];
        // Uniqueness only; a clash is caught by create_new.
        let _ = getrandom::fill(&mut suffix);
        let tmp = self.dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            u64::from_le_bytes(suffix)
        ));
        let result = (|| {
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            private_file(&mut options);
            let mut file = options.open(&tmp).map_err(io(&tmp))?;
            set_private(&file).map_err(io(&tmp))?;
            file.write_all(bytes).map_err(io(&tmp))?;
            file.sync_all().map_err(io(&tmp))?;
            fs::rename(&tmp, &target).map_err(io(&target))?;
            sync_dir(&self.dir)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// Creates `dir` (and its missing parents) private to the owner, or tightens an existing one.
#[cfg(unix)]
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(io(dir))?;
    let mode = fs::metadata(dir).map_err(io(dir))?.permissions().mode();
    if mode & 0o777 != DIR_MODE {
        // Exactly 0700 whatever the umask; a directory of another owner (shared on purpose by
        // an administrator) cannot be changed and is left as it is.
        match fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)) {
            Err(e) if e.kind() != std::io::ErrorKind::PermissionDenied => {
                return Err(io(dir)(e));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    // The per-user data directory's ACL already keeps other users out on Windows.
    fs::create_dir_all(dir).map_err(io(dir))
}

/// Files the store creates are 0600 on Unix.
#[cfg(unix)]
fn private_file(options: &mut OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(FILE_MODE);
}

#[cfg(not(unix))]
fn private_file(_options: &mut OpenOptions) {}

/// Exactly 0600 on Unix, whatever the umask made of the mode given at creation.
#[cfg(unix)]
fn set_private(file: &File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(FILE_MODE))
}

#[cfg(not(unix))]
fn set_private(_file: &File) -> std::io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), StoreError> {
    // Windows has no directory fsync; NTFS journals the rename (MoveFileEx).
    Ok(())
}

// Machine-wide names follow the `directories` crate's per-user naming on each platform, so one
// app has one directory name everywhere.
#[cfg(target_os = "linux")]
fn machine_dir(_q: &str, _o: &str, application: &str) -> Result<PathBuf, StoreError> {
    let name: String = application
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    Ok(PathBuf::from("/var/lib").join(name))
}

#[cfg(target_os = "macos")]
fn machine_dir(q: &str, o: &str, application: &str) -> Result<PathBuf, StoreError> {
    let id = format!("{q}.{o}.{application}").replace(char::is_whitespace, "-");
    Ok(PathBuf::from("/Library/Application Support").join(id))
}

#[cfg(windows)]
fn machine_dir(_q: &str, o: &str, application: &str) -> Result<PathBuf, StoreError> {
    let base = std::env::var_os("ProgramData").ok_or(StoreError::NoDataDir)?;
    Ok(PathBuf::from(base).join(o).join(application))
}

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
fn machine_dir(_q: &str, _o: &str, application: &str) -> Result<PathBuf, StoreError> {
    Ok(PathBuf::from("/var/lib").join(application))
}
