//! Intrusive RCU lists (work in progress).
