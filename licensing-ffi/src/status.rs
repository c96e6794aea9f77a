//! `lic_status` and `lic_model`: the core's `Status` and `LicenseModel` themselves, exported
//! by cbindgen under their C names (`cbindgen.toml`: `[export.rename]`, variants
//! `LIC_STATUS_*` / `LIC_MODEL_*`), so the header cannot drift from the core; and the
//! functions naming and describing them.

use std::ffi::{CStr, c_char};

use licensing_core::{LicenseModel, Status};

use crate::abi::guard_value;

/// The core status with this number, if any.
fn core_status(number: u32) -> Option<Status> {
    Status::ALL.into_iter().find(|s| *s as u32 == number)
}

/// The stable snake_case name of a status (`"valid"`, `"valid_in_grace"`, ...), as in JSON and
/// the CLI; `"unknown"` for a number this build does not know.
///
/// Returns a static string: never free it. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn lic_status_name(status: u32) -> *const c_char {
    guard_value(c"unknown".as_ptr(), || {
        core_status(status)
            .map_or(c"unknown", Status::name_c)
            .as_ptr()
    })
}

/// A short English sentence for a status, fit for an end user (`"No license is installed."`);
/// `"Unknown license status."` for a number this build does not know. Show the verdict's
/// reason (`lic_verdict_reason`) for the details.
///
/// Returns a static string: never free it. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn lic_status_message(status: u32) -> *const c_char {
    guard_value(c"Unknown license status.".as_ptr(), || {
        core_status(status)
            .map_or(c"Unknown license status.", Status::message_c)
            .as_ptr()
    })
}

/// Whether a status lets the software run: true for `LIC_STATUS_VALID` and
/// `LIC_STATUS_VALID_IN_GRACE` only (false for unknown numbers). Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn lic_status_is_usable(status: u32) -> bool {
    guard_value(false, || core_status(status).is_some_and(Status::is_usable))
}

fn model_name(model: LicenseModel) -> &'static CStr {
    match model {
        LicenseModel::Perpetual => c"perpetual",
        LicenseModel::Subscription => c"subscription",
        LicenseModel::Trial => c"trial",
        LicenseModel::Floating => c"floating",
        LicenseModel::NodeLocked => c"node_locked",
        LicenseModel::Site => c"site",
    }
}

/// The snake_case name of a model (`"perpetual"`, `"node_locked"`, ...), as in tokens;
/// `"unknown"` for a number this build does not know.
///
/// Returns a static string: never free it. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn lic_model_name(model: u32) -> *const c_char {
    guard_value(c"unknown".as_ptr(), || {
        LicenseModel::ALL
            .into_iter()
            .find(|m| *m as u32 == model)
            .map_or(c"unknown", model_name)
            .as_ptr()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(text: *const c_char) -> &'static str {
        // SAFETY: the functions under test return static NUL-terminated strings.
        unsafe { CStr::from_ptr(text) }.to_str().unwrap_or("")
    }

    /// The C name of a status as the header spells it.
    fn header_name(status: Status) -> String {
        format!("LIC_STATUS_{}", status.as_str().to_uppercase())
    }

    #[test]
    fn every_core_status_has_its_name_message_and_usability() {
        for status in Status::ALL {
            assert_eq!(c(lic_status_name(status as u32)), status.as_str());
            assert_eq!(lic_status_is_usable(status as u32), status.is_usable());
            assert_eq!(c(lic_status_message(status as u32)), status.message());
        }
        // Numbers are not dense (reserved values), so "past the end" is after the largest.
        let past_end = Status::ALL.iter().map(|s| *s as u32).max().unwrap_or(0) + 1;
        assert_eq!(c(lic_status_name(past_end)), "unknown");
        assert_eq!(c(lic_status_message(past_end)), "Unknown license status.");
        assert!(!lic_status_is_usable(past_end));
    }

    /// The header is generated from the core's enums: each C name with the core's number.
    #[test]
    fn the_header_spells_every_status_and_model_with_its_number() {
        let header = include_str!("../../include/licensing.h");
        for status in Status::ALL {
            let line = format!("{} = {},", header_name(status), status as u32);
            assert!(header.contains(&line), "header lacks `{line}`");
        }
        for model in LicenseModel::ALL {
            let line = format!(
                "LIC_MODEL_{} = {},",
                model.as_str().to_uppercase(),
                model as u32
            );
            assert!(header.contains(&line), "header lacks `{line}`");
        }
        assert!(header.contains("enum lic_status\n"));
        assert!(header.contains("enum lic_model\n"));
    }

    #[test]
    fn every_model_has_its_name() {
        for model in LicenseModel::ALL {
            assert_eq!(c(lic_model_name(model as u32)), model.as_str());
        }
        assert_eq!(c(lic_model_name(LicenseModel::ALL.len() as u32)), "unknown");
    }
}
