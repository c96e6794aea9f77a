//! uniffi bindings of the licensing SDK (work in progress).
