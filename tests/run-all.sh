#!/usr/bin/env bash
# The whole test suite: install dependencies, build a normal and an
# AddressSanitizer+UndefinedBehaviorSanitizer configuration, run the unit,
# fuzz (corpus replay), integration and cluster suites on both (and the
# deploy checks once), fuzz every target for a minute (clang, ASan+UBSan),
# and print a summary line "N passed, N failed".
# Exit status 0 only if nothing failed.
set -uo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh || { echo "dependency installation failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
run_config() { # name, suites, meson options...
    local dir="build-test-$1"; shift
    local suites=(); for s in $1; do suites+=(--suite "$s"); done; shift
    if [ ! -d "$dir" ]; then
        meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; failed=$((failed + 1)); return; }
    fi
    if ! ninja -C "$dir" >"$dir.build.log" 2>&1; then
        tail -50 "$dir.build.log"; failed=$((failed + 1)); return
    fi
    meson test -C "$dir" --print-errorlogs "${suites[@]}" --num-processes 2 || true
    local json="$dir/meson-logs/testlog.json"
    if [ -f "$json" ]; then
        local p f
        p=$(grep -c '"result": "OK"' "$json" || true)
        f=$(grep -c -E '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$json" || true)
        echo "== $dir: $p passed, $f failed"
        passed=$((passed + p)); failed=$((failed + f))
    else
        failed=$((failed + 1))
    fi
}

# Fuzzing: every target of tests/fuzz for WARREN_FUZZ_TIME seconds (at least
# 60) under ASan+UBSan, two at a time; each target counts as one test.
run_fuzzers() {
    local out summary p f
    out=$(mktemp)
    tests/fuzz/run-fuzzers.sh --build build-test-fuzz --time "${WARREN_FUZZ_TIME:-60}" 2>&1 | tee "$out"
    summary=$(grep -E '^fuzz: [0-9]+ passed, [0-9]+ failed$' "$out" | tail -1)
    rm -f "$out"
    if [ -z "$summary" ]; then
        failed=$((failed + 1)); return
    fi
    p=$(echo "$summary" | cut -d' ' -f2)
    f=$(echo "$summary" | cut -d' ' -f4)
    echo "== fuzzing: $p passed, $f failed"
    passed=$((passed + p)); failed=$((failed + f))
}

# The cluster suite needs root (network namespaces); the deploy suite checks
# the deployment files once, on the plain build. The plain build's tests run
# every tunneld and tunnel at debug level, and each test fails if any log
# holds a secret it issued (tests/integration/harness.py).
WARREN_LOG_LEVEL=debug run_config plain "unit fuzz integration cluster deploy" -Dbuildtype=debugoptimized
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_config asan "unit fuzz integration cluster" -Dbuildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false
run_fuzzers
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
