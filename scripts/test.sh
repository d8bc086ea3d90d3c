#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, runs every test (namespace tests run as
# root and skip themselves otherwise), then checks that no test left a namespace behind.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
before=$(ip netns list 2>/dev/null | awk '{print $1}' | grep '^sg-' || true)
swift build --build-tests
swift test --skip-build 2>&1 | tee .build/test-output.txt
status=${PIPESTATUS[0]}
# The benchmarks must keep building and agreeing with their C references (a smoke run: the
# timings it prints are not judged here).
if ! swift run -c release --package-path Benchmarks PacketKitBenchmarks --quick; then
    echo "test.sh: the PacketKit benchmark smoke run failed" >&2
    status=1
fi
# TunnelCore's smoke run fails if a per-packet path allocates (a count, not a timing).
if ! swift run -c release --package-path Benchmarks TunnelCoreBenchmarks --quick; then
    echo "test.sh: the TunnelCore benchmark smoke run failed (allocations on a per-packet path?)" >&2
    status=1
fi
# AddressPool at a small scale: fills, reopens and looks up (fails if a lookup misses).
if ! swift run -c release --package-path Benchmarks AddressPoolBenchmarks 20000 2000; then
    echo "test.sh: the AddressPool benchmark smoke run failed" >&2
    status=1
fi
# gatewayd's planner at a small scale: one client's change applied incrementally must equal the
# whole plan (a check, not a timing).
if ! swift run -c release --package-path Benchmarks PlannerBenchmarks 2000; then
    echo "test.sh: the planner benchmark smoke run failed (incremental and whole plans differ?)" >&2
    status=1
fi
# Every fuzz target for a few seconds from its seed corpus and regression inputs (scripts/fuzz.sh;
# the long runs happen outside CI): a crash, a leak, a hang or a broken invariant fails the run.
# A fixed seed, so the smoke run replays the same mutations each time (the corpora grow elsewhere).
if ! scripts/fuzz.sh -t 5 -j 2 -s 1; then
    echo "test.sh: a fuzz target found something (see above; inputs under .build/fuzz/)" >&2
    status=1
fi
# The Debian package: built (release, Swift runtime linked in), installed into an overlay of this
# machine in a private mount namespace, gatewayd started from its unit, purged (scripts/package-test.sh).
if [ "$(id -u)" = 0 ]; then
    if ! scripts/package-test.sh > .build/package-test.log 2>&1; then
        tail -20 .build/package-test.log >&2
        echo "test.sh: the package test failed (.build/package-test.log)" >&2
        status=1
    else
        grep '^package-test:' .build/package-test.log
    fi
fi
after=$(ip netns list 2>/dev/null | awk '{print $1}' | grep '^sg-' || true)
leftover=$(comm -13 <(echo "$before" | sort) <(echo "$after" | sort) | grep . || true)
if [ -n "$leftover" ]; then
    echo "test.sh: tests left network namespaces behind: $leftover" >&2
    for ns in $leftover; do ip netns del "$ns" || true; done
    status=1
fi
# The closing line, counted from Swift Testing's per-test results (XCTest, which has no tests
# here, prints "Executed 0 tests" above; this line is the verdict).
passed=$(grep -E '^✔ Test .* passed after' .build/test-output.txt | grep -vc '^✔ Test run with' || true)
failed=$(grep -E '^✘ Test .* failed after' .build/test-output.txt | grep -vc '^✘ Test run with' || true)
skipped=$(grep -cE '^➜ Test .* skipped' .build/test-output.txt || true)
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$status"
