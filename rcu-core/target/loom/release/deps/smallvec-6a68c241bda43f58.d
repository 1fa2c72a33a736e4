/work/main/rcu-core/target/loom/release/deps/smallvec-6a68c241bda43f58.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/smallvec-1.16.6/src/lib.rs

/work/main/rcu-core/target/loom/release/deps/libsmallvec-6a68c241bda43f58.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/smallvec-1.16.6/src/lib.rs

/work/main/rcu-core/target/loom/release/deps/libsmallvec-6a68c241bda43f58.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/smallvec-1.16.6/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/smallvec-1.16.6/src/lib.rs:
