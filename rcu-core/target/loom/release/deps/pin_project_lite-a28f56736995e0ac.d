/work/main/rcu-core/target/loom/release/deps/pin_project_lite-a28f56736995e0ac.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pin-project-lite-0.2.18/src/lib.rs

/work/main/rcu-core/target/loom/release/deps/libpin_project_lite-a28f56736995e0ac.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pin-project-lite-0.2.18/src/lib.rs

/work/main/rcu-core/target/loom/release/deps/libpin_project_lite-a28f56736995e0ac.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pin-project-lite-0.2.18/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pin-project-lite-0.2.18/src/lib.rs:
