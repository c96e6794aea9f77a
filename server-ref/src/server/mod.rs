//! The reference licensing server, `licensing-server serve`: an HTTP API over a database
//! (embedded SQLite now). It stores state and calls licensing-core to sign, verify and evaluate;
//! no licensing rule is decided here.
//!
//! Startup: the data directory, the signing key (created on first start, PKCS#8 0600), the
//! database (created and migrated), a one-time admin API token on first start (printed once,
//! only its SHA-256 stored), then `listening on http://ADDR` on stdout. SIGINT/SIGTERM stop it
//! gracefully.

mod admin_token;
mod audit;
mod base_url;
mod cef;
mod checkpoints;
mod config;
mod conn;
mod console;
mod db;
mod deprovision;
mod directory_import;
mod display_name;
mod error;
mod extract;
mod gdpr;
mod gdpr_cli;
mod issue;
mod key_wrap;
mod keys_cli;
mod machines;
mod oauth;
mod offline;
mod openapi;
mod package;
mod reclamation;
mod routes;
mod scim;
mod seat_policy;
mod secrets;
mod syslog;
#[cfg(test)]
pub(crate) mod test_postgres;
mod tls;

pub use config::ServeArgs;
use config::Settings;
use db::Db;

pub use admin_token::{AdminTokenArgs, run_admin_token};
pub use audit::{
    AuditVerifyArgs, AuditVerifyPackageArgs, run_audit_verify, run_audit_verify_package,
};
pub use gdpr_cli::{GdprEraseArgs, GdprExportArgs, run_gdpr_erase, run_gdpr_export};
pub use keys_cli::{
    KeysListArgs, KeysPromoteArgs, KeysStageArgs, run_keys_list, run_keys_promote, run_keys_stage,
};
pub use offline::{
    OfflineActivateArgs, OfflineDeactivateArgs, run_offline_activate, run_offline_deactivate,
};

mod http;
mod startup;
mod state;

pub(crate) use http::*;
pub use startup::run;
pub(crate) use startup::*;
pub(crate) use state::*;

#[cfg(test)]
mod tests;
