/work/main/rcu-core/target/loom/release/deps/rcu_core-05eca2f3632048ae.d: rcu-core/src/lib.rs rcu-core/src/call_rcu.rs rcu-core/src/docs/mod.rs rcu-core/src/docs/internal.rs rcu-core/src/docs/limitations.rs rcu-core/src/domain.rs rcu-core/src/flavor.rs rcu-core/src/membarrier.rs rcu-core/src/ptr.rs rcu-core/src/reader.rs rcu-core/src/sync.rs

/work/main/rcu-core/target/loom/release/deps/librcu_core-05eca2f3632048ae.rlib: rcu-core/src/lib.rs rcu-core/src/call_rcu.rs rcu-core/src/docs/mod.rs rcu-core/src/docs/internal.rs rcu-core/src/docs/limitations.rs rcu-core/src/domain.rs rcu-core/src/flavor.rs rcu-core/src/membarrier.rs rcu-core/src/ptr.rs rcu-core/src/reader.rs rcu-core/src/sync.rs

/work/main/rcu-core/target/loom/release/deps/librcu_core-05eca2f3632048ae.rmeta: rcu-core/src/lib.rs rcu-core/src/call_rcu.rs rcu-core/src/docs/mod.rs rcu-core/src/docs/internal.rs rcu-core/src/docs/limitations.rs rcu-core/src/domain.rs rcu-core/src/flavor.rs rcu-core/src/membarrier.rs rcu-core/src/ptr.rs rcu-core/src/reader.rs rcu-core/src/sync.rs

rcu-core/src/lib.rs:
rcu-core/src/call_rcu.rs:
rcu-core/src/docs/mod.rs:
rcu-core/src/docs/internal.rs:
rcu-core/src/docs/limitations.rs:
rcu-core/src/domain.rs:
rcu-core/src/flavor.rs:
rcu-core/src/membarrier.rs:
rcu-core/src/ptr.rs:
rcu-core/src/reader.rs:
rcu-core/src/sync.rs:
