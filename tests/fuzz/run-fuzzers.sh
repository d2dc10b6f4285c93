#!/usr/bin/env bash
# Fuzz every target of tests/fuzz with libFuzzer under AddressSanitizer,
# LeakSanitizer and UndefinedBehaviorSanitizer, for at least 60 s each, two
# at a time. The checked-in corpus of each target is copied to a temporary
# directory first, so a run never changes it. Any crash, leak, timeout (an
# input taking over 10 s) or out-of-memory (2 GiB) fails the target: the
# script prints the libFuzzer report, the reproducer (hex) and the command
# that replays it, and keeps it in BUILD/fuzz-findings/TARGET/.
#
#   tests/fuzz/run-fuzzers.sh [--time SECS] [--jobs N] [--build DIR] [--merge] [TARGET...]
#
#   --time SECS   fuzzing time per target (default 60; at least 60 unless
#                 WARREN_FUZZ_SHORT=1, for trying the script itself)
#   --jobs N      targets fuzzed at once (default 2)
#   --build DIR   build directory (default build-fuzz beside the sources; made
#                 with clang, -Dfuzzing=true and ASan+UBSan if missing)
#   --merge       afterwards, minimise each corpus (libFuzzer -merge=1): the named
#                 inputs plus the fuzzed ones (checked in or just found) that add
#                 coverage to them replace the checked-in corpus (a maintenance
#                 step; commit the result)
#
# Output: one line per target, "fuzz TARGET: PASS (...)" or "fuzz TARGET: FAIL
# (...)", then "fuzz: N passed, N failed". Exit status 0 only if all passed.
set -uo pipefail
cd "$(dirname "$0")/../.."
SRC=$PWD

time_s=60
jobs=2
build="$SRC/build-fuzz"
merge=0
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
    --time) time_s=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --build) build=$(realpath -m "$2"); shift 2 ;;
    --merge) merge=1; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run-fuzzers: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
    esac
done
if ! [[ "$time_s" =~ ^[0-9]+$ ]] || { [ "$time_s" -lt 60 ] && [ "${WARREN_FUZZ_SHORT:-}" != 1 ]; }; then
    echo "run-fuzzers: --time must be at least 60 (seconds)" >&2
    exit 2
fi
if [ ${#targets[@]} -eq 0 ]; then
    for f in tests/fuzz/fuzz_*.c; do
        t=${f#tests/fuzz/fuzz_}
        targets+=("${t%.c}")
    done
fi

# --- build
if ! command -v clang >/dev/null; then
    echo "run-fuzzers: clang is not installed (apt-get install clang)" >&2
    echo "fuzz: 0 passed, ${#targets[@]} failed"
    exit 1
fi
if [ ! -d "$build" ]; then
    if ! CC=clang meson setup "$build" -Dfuzzing=true -Dbuildtype=debugoptimized \
        -Db_sanitize=address,undefined -Db_lundef=false >"$build.setup.log" 2>&1; then
        cat "$build.setup.log"
        echo "fuzz: 0 passed, ${#targets[@]} failed"
        exit 1
    fi
fi
if ! ninja -C "$build" >"$build.build.log" 2>&1; then
    tail -50 "$build.build.log"
    echo "fuzz: 0 passed, ${#targets[@]} failed"
    exit 1
fi

work=$(mktemp -d /tmp/warren-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:symbolize=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

# fuzz_one TARGET: fuzz it; writes $work/TARGET.result ("PASS ..." or "FAIL ...")
fuzz_one() {
    local t=$1 bin="$build/tests/fuzz/fuzz_$1" d="$work/$1"
    local corpus="$d/corpus" art="$d/artifacts/" log="$d/fuzz.log"
    mkdir -p "$corpus" "$art"
    if [ ! -x "$bin" ]; then
        echo "FAIL (no fuzzer $bin)" >"$d.result"
        return
    fi
    local seeds=0
    if [ -d "tests/fuzz/corpus/$t" ]; then
        cp "tests/fuzz/corpus/$t/"* "$corpus/" 2>/dev/null
        seeds=$(find "tests/fuzz/corpus/$t" -type f | wc -l)
    fi
    local dict=()
    [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="$SRC/tests/fuzz/$t.dict")
    # -max_total_time ends the run; timeout(1) is the backstop for a hang
    timeout -k 10 $((time_s + 120)) "$bin" -max_total_time="$time_s" -timeout=10 \
        -rss_limit_mb=2048 -detect_leaks=1 -print_final_stats=1 -artifact_prefix="$art" \
        "${dict[@]}" "$corpus" >"$log" 2>&1
    local rc=$?
    local execs rate cov files rss
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    files=$(find "$corpus" -type f | wc -l)
    local found
    found=$(find "$art" -type f | wc -l)
    local summary="${execs:-?} execs in ${time_s} s (${rate:-?}/s), coverage ${cov:-?}, corpus $seeds -> $files, peak RSS ${rss:-?} MB"
    if [ "$rc" -eq 0 ] && [ "$found" -eq 0 ] && [ -n "$execs" ]; then
        echo "PASS ($summary)" >"$d.result"
    else
        echo "FAIL (exit $rc, $found reproducer(s); $summary)" >"$d.result"
    fi
}

report_failure() {
    local t=$1 d="$work/$1" keep="$build/fuzz-findings/$1"
    echo "---- fuzz $t: libFuzzer output (last 60 lines) ----"
    tail -60 "$d/fuzz.log"
    mkdir -p "$keep"
    for a in "$d/artifacts/"*; do
        [ -f "$a" ] || continue
        cp "$a" "$keep/"
        echo "---- reproducer $(basename "$a") ($(stat -c %s "$a") bytes), kept as $keep/$(basename "$a") ----"
        od -A d -t x1z -v "$a" | head -40
        echo "replay: $build/tests/fuzz/fuzz_$t $keep/$(basename "$a")"
        echo "   (or, without libFuzzer: mkdir /tmp/r && cp $keep/$(basename "$a") /tmp/r/ &&" \
            "$build/tests/fuzz/replay_$t /tmp/r)"
    done
}

# --- fuzz, $jobs at a time
running=0
for t in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
    echo "fuzzing $t for $time_s s ..."
    fuzz_one "$t" &
    running=$((running + 1))
done
wait

passed=0
failed=0
for t in "${targets[@]}"; do
    res=$(cat "$work/$t.result" 2>/dev/null || echo "FAIL (no result)")
    echo "fuzz $t: $res"
    case "$res" in
    PASS*) passed=$((passed + 1)) ;;
    *) failed=$((failed + 1)); report_failure "$t" ;;
    esac
done

# --- optional: minimise the checked-in corpora with what was found. Inputs
# with a name (written by hand or by tests/fuzz/seeds.py: not fuzz-* or
# fuzzed-*) stay, they say what they are; of the rest, libFuzzer keeps only
# those that add coverage to them (-merge=1), named fuzzed-SHA1PREFIX.
if [ "$merge" -eq 1 ]; then
    for t in "${targets[@]}"; do
        bin="$build/tests/fuzz/fuzz_$t" out="$work/$t/merged" dir="tests/fuzz/corpus/$t"
        mkdir -p "$out" "$dir"
        for f in "$dir/"*; do
            case "$(basename "$f")" in fuzz-*|fuzzed-*) ;; *) [ -f "$f" ] && cp "$f" "$out/" ;; esac
        done
        named=$(ls "$out" | wc -l)
        if "$bin" -merge=1 -timeout=10 -rss_limit_mb=2048 "$out" "$dir" "$work/$t/corpus" \
            >"$work/$t/merge.log" 2>&1; then
            rm -f "$dir/"*
            for f in "$out/"*; do
                n=$(basename "$f")
                [[ "$n" =~ ^[0-9a-f]{40}$ ]] && n="fuzzed-${n:0:12}"
                cp "$f" "$dir/$n"
            done
            echo "merged $t: $(ls "$dir" | wc -l) inputs ($named named)"
        else
            echo "merge of $t failed:"; tail -20 "$work/$t/merge.log"
        fi
    done
fi

echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
