//! C ABI of the licensing SDK (work in progress).
