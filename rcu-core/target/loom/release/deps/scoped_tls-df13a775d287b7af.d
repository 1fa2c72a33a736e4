/work/main/rcu-core/target/loom/release/deps/scoped_tls-df13a775d287b7af.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/scoped-tls-1.0.1/src/lib.rs

/work/main/rcu-core/target/loom/release/deps/libscoped_tls-df13a775d287b7af.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/scoped-tls-1.0.1/src/lib.rs

/work/main/rcu-core/target/loom/release/deps/libscoped_tls-df13a775d287b7af.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/scoped-tls-1.0.1/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/scoped-tls-1.0.1/src/lib.rs:
