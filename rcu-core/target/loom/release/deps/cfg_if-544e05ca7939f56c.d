/work/main/rcu-core/target/loom/release/deps/cfg_if-544e05ca7939f56c.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/cfg-if-1.0.5/src/lib.rs

/work/main/rcu-core/target/loom/release/deps/libcfg_if-544e05ca7939f56c.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/cfg-if-1.0.5/src/lib.rs

/work/main/rcu-core/target/loom/release/deps/libcfg_if-544e05ca7939f56c.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/cfg-if-1.0.5/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/cfg-if-1.0.5/src/lib.rs:
