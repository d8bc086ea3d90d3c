#!/usr/bin/env bash
# Runs Sixgate's libFuzzer targets (Tests/Fuzz) for a while each, from the committed seed corpora.
#   scripts/fuzz.sh [-t SECONDS] [-j JOBS] [-s SEED] [TARGET...]   (default: 60 s, one at a time, every target, a random seed)
#   scripts/fuzz.sh -t 600 -j 2                             the 10-minute run, two targets at once
# Builds the targets with -sanitize=fuzzer,address. New inputs go to .build/fuzz/TARGET/corpus (kept
# between runs), findings to .build/fuzz/TARGET/ as crash-*, leak-*, timeout-* or oom-*; a finding
# makes the script exit 1 and prints how to reproduce it. Targets that open sockets or TUN devices
# (ndp, wireguard, uapi) move into a network namespace of their own and need root; without root
# they are skipped. A fixed finding's input goes into Tests/Fuzz/Corpus/TARGET/regression-NAME.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60 jobs=1 seed=0
while getopts "t:j:s:" o; do
    case $o in t) seconds=$OPTARG ;; j) jobs=$OPTARG ;; s) seed=$OPTARG ;; *) sed -n '2,10p' "$0"; exit 2 ;; esac
done
shift $((OPTIND - 1))
all=$(ls Tests/Fuzz/Sources | grep '^fuzz-')
targets=${*:-$all}
needs_root="fuzz-ndp fuzz-wireguard fuzz-uapi"
# A Swift runtime trap goes straight to libFuzzer's handler (Swift's own backtracer trips ASan).
export SWIFT_BACKTRACE=enable=no

swift build --package-path Tests/Fuzz -Xswiftc -sanitize=fuzzer,address 2>&1 | grep -v "Cannot export local symbol" | tail -3
bin=$(swift build --package-path Tests/Fuzz -Xswiftc -sanitize=fuzzer,address --show-bin-path)

run_one() {
    local t=$1 dir=.build/fuzz/$1
    mkdir -p "$dir/corpus"
    rm -f "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-* "$dir"/slow-unit-*
    if [[ " $needs_root " == *" $t "* ]] && [ "$(id -u)" -ne 0 ]; then
        echo "$t: skipped (needs root for its private network namespace)"; return 0
    fi
    # -timeout: an input slower than 10 s is a hang; -rss_limit_mb: a run over 2 GiB is a leak or a blow-up.
    if "$bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -seed="$seed" \
            -artifact_prefix="$dir/" "$dir/corpus" "Tests/Fuzz/Corpus/$t" > "$dir/log" 2>&1; then
        local runs cov ft corp
        runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$dir/log" | awk '{print $2}')
        cov=$(grep -oE 'cov: [0-9]+' "$dir/log" | tail -1 | awk '{print $2}')
        ft=$(grep -oE 'ft: [0-9]+' "$dir/log" | tail -1 | awk '{print $2}')
        corp=$(grep -oE 'corp: [0-9]+/[0-9a-zA-Z]+' "$dir/log" | tail -1 | awk '{print $2}')
        echo "$t: ok, ${seconds} s, ${runs:-?} executions, coverage ${cov:-?} edges, ${ft:-?} features, corpus ${corp:-?}"
    else
        echo "$t: FINDING (log: $dir/log)"
        grep -E "ERROR: |invariant: |Fatal error|SUMMARY:" "$dir/log" | head -5 | sed 's/^/    /'
        ls "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-* 2>/dev/null | head -3 | while read -r f; do
            echo "    reproduce: $bin/$t $f"
        done
        return 1
    fi
}

status=0
running=0
pids=()
for t in $targets; do
    [ -d "Tests/Fuzz/Sources/$t" ] || { echo "no fuzz target $t (have: $(echo $all))" >&2; exit 2; }
    run_one "$t" > ".build/fuzz-$t.result" 2>&1 &
    pids+=("$!:$t")
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true
for entry in "${pids[@]}"; do
    t=${entry#*:}
    cat ".build/fuzz-$t.result"
    grep -q "FINDING" ".build/fuzz-$t.result" && status=1
done
exit $status
