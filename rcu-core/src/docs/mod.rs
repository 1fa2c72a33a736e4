//! Documentation-only modules: which flavor and API to choose, how it works, and what it
//! does not do.

pub mod choosing;
pub mod internal;
pub mod limitations;
