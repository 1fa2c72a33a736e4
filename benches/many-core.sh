#!/bin/bash
# The many-core figures of BENCHMARKS.md ("16-core machine") in one script, in two steps so
# that the machine that runs them needs no Rust toolchain (the lent 16-core machine had none):
#
#   benches/many-core.sh build DIR     here: build the binaries (release) and copy them to DIR
#   benches/many-core.sh run DIR OUT   there: run them; the tables, plots and log go to OUT
#
# On a machine with cargo, `build` then `run` on the same machine does the same.
set -u
cmd=${1:-}
dir=${2:-}
case "$cmd" in
build)
    [ -n "$dir" ] || { echo "usage: $0 build DIR" >&2; exit 2; }
    set -e
    mkdir -p "$dir"
    exe() { sed -n 's/^ *Executable .*(\(.*\))$/\1/p' | grep "/$1-" | head -1; }
    cargo build --release -p benches --bin scaling
    cp target/release/scaling "$dir/scaling"
    benches=$(cargo bench -p benches --no-run 2>&1)
    for b in read_side list_traverse ram_list; do
        cp "$(echo "$benches" | exe "$b")" "$dir/b_$b"
    done
    tests=$(cargo test --release -p rcu-core -p rcu-queue -p ram-list --no-run 2>&1)
    for t in qemu_rcutorture qemu_test_rcu_list hotplug_race call_rcu grace_periods; do
        cp "$(echo "$tests" | exe "$t")" "$dir/t_$t"
    done
    strip "$dir"/* 2>/dev/null || true
    ls -l "$dir"
    ;;
run)
    out=${3:-}
    [ -n "$dir" ] && [ -n "$out" ] || { echo "usage: $0 run DIR OUT" >&2; exit 2; }
    mkdir -p "$out"
    exec > >(tee "$out/run.log") 2>&1
    echo "== machine"
    nproc; uname -r; grep -m1 "model name" /proc/cpuinfo
    lscpu 2>/dev/null | grep -E "Thread|Core|Socket|L2|L3"
    date -u
    echo "== scaling"
    timeout 330 "$dir/scaling" --threads 1,2,4,8,12,16,32 --duration-ms 400 --runs 3 --out "$out"
    echo "scaling rc=$?"
    echo "== read_side (single thread)"
    timeout 90 "$dir/b_read_side" --bench 'read_side/' --warm-up-time 0.5 --measurement-time 1.5 \
        | grep -E "time:|^read_side"
    echo "== list_traverse"
    timeout 100 "$dir/b_list_traverse" --bench nomatch; echo "list_traverse rc=$?"
    echo "== ram_list"
    timeout 60 "$dir/b_ram_list" --bench nomatch; echo "ram_list rc=$?"
    echo "== stress tests with many readers"
    RCU_TORTURE_READERS=14 RCU_TORTURE_SECS=1 timeout 60 "$dir/t_qemu_rcutorture" --test-threads=1 \
        | grep -E "test result|FAILED|panicked"
    RCU_TORTURE_SECS=1 timeout 60 "$dir/t_qemu_test_rcu_list" --test-threads=1 --nocapture \
        | grep -E "readers=|test result|FAILED|panicked"
    for t in hotplug_race call_rcu grace_periods; do
        timeout 45 "$dir/t_$t" | grep -E "test result|FAILED|panicked"
    done
    date -u
    ;;
*)
    echo "usage: $0 build DIR | run DIR OUT" >&2
    exit 2
    ;;
esac
