//! Documentation-only modules: how it works and what it does not do.

pub mod internal;
pub mod limitations;
