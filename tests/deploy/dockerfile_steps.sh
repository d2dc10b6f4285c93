#!/usr/bin/env bash
# Runs the build stage of the Dockerfile as a plain script, since no container
# engine runs here: the build context is copied to a scratch directory minus
# what .dockerignore excludes, and the stage's ARG, ENV, WORKDIR, COPY and RUN
# instructions are carried out in order, with a clean environment and with
# every absolute path (WORKDIR, COPY destinations, ARG defaults such as the
# install DESTDIR) placed under a scratch root. The apt steps are the host's
# own (deploy/install-deps.sh installs only what is missing). Then checks that
# the staged tunneld runs, and that every file the runtime stage copies exists.
#
# Any other instruction in the build stage fails this script: teach it here
# first. Usage: tests/deploy/dockerfile_steps.sh (as root when packages are
# missing). Exit status 0 passed, 1 failed.
set -euo pipefail

SRC=${WARREN_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
work=$(mktemp -d /tmp/warren-dockerfile.XXXXXX)
trap 'rm -rf "$work"' EXIT
ctx="$work/context" # the build context, after .dockerignore
root="$work/root"   # stands for the build stage's file system
mkdir -p "$ctx" "$root"
failed=0

ok() { echo "ok   $*"; }
fail() {
    echo "FAIL $*"
    failed=1
}
die() {
    echo "FAIL $*"
    exit 1
}

# --- the build context ------------------------------------------------------
# .dockerignore patterns are relative to the context root; "**/x" matches x at
# any depth. tar's --anchored/--no-anchored apply to the --exclude options
# that follow them.
anchored=() anywhere=()
if [ -f "$SRC/.dockerignore" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
        line="${line#"${line%%[![:space:]]*}"}"
        line="${line%"${line##*[![:space:]]}"}"
        case "$line" in
        '' | '#'*) continue ;;
        '!'*) die ".dockerignore: exceptions (!$line) are not supported by this script" ;;
        '**/'*) anywhere+=("--exclude=${line#'**/'}") ;;
        *)
            line="${line#/}"
            anchored+=("--exclude=./${line%/}")
            ;;
        esac
    done <"$SRC/.dockerignore"
fi
tar -C "$SRC" --anchored "${anchored[@]}" --no-anchored "${anywhere[@]}" -cf - . |
    tar -C "$ctx" -xf -
ok "build context copied ($(du -sh "$ctx" | cut -f1), .dockerignore applied)"

# --- the Dockerfile, one instruction per line ---------------------------------
# Continuation lines are joined; comment lines vanish, also inside a
# continuation, as Docker does.
instructions=()
cur=""
while IFS= read -r line || [ -n "$line" ]; do
    t="${line#"${line%%[![:space:]]*}"}"
    case "$t" in '#'*) continue ;; esac
    if [ -z "$t" ] && [ -z "$cur" ]; then
        continue
    fi
    if [[ "$t" == *\\ ]]; then
        cur+="${t%\\} "
        continue
    fi
    cur+="$t"
    [ -n "$cur" ] && instructions+=("$cur")
    cur=""
done <"$SRC/Dockerfile"

# --- run the build stage -------------------------------------------------------
envs=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "HOME=/root")
cwd="/"
stage=-1
step=0
runtime=()
set_env() { # NAME VALUE: later values replace earlier ones
    local i
    for i in "${!envs[@]}"; do
        if [[ "${envs[$i]}" == "$1="* ]]; then
            envs[i]="$1=$2"
            return
        fi
    done
    envs+=("$1=$2")
}
abspath() { # a path inside the stage, relative to the current WORKDIR if needed
    case "$1" in
    /*) printf '%s' "$1" ;;
    *) printf '%s/%s' "${cwd%/}" "$1" ;;
    esac
}
for ins in "${instructions[@]}"; do
    word="${ins%% *}"
    args="${ins#"$word"}"
    args="${args#"${args%%[![:space:]]*}"}"
    word="${word^^}"
    if [ "$word" = FROM ]; then
        stage=$((stage + 1))
        continue
    fi
    if [ "$stage" -ge 1 ]; then
        runtime+=("$word $args")
        continue
    fi
    [ "$stage" -eq 0 ] || die "Dockerfile: $word before the first FROM"
    case "$word" in
    ARG)
        name="${args%%=*}"
        value=""
        [[ "$args" == *=* ]] && value="${args#*=}"
        case "$value" in /*) value="$root$value" ;; esac
        set_env "$name" "$value"
        ;;
    ENV)
        [[ "$args" == *[\"\']* ]] &&
            die "Dockerfile: quoted ENV values are not supported here: $args"
        for kv in $args; do
            [[ "$kv" == *=* ]] || die "Dockerfile: ENV must use NAME=VALUE: $args"
            set_env "${kv%%=*}" "${kv#*=}"
        done
        ;;
    WORKDIR)
        cwd=$(abspath "$args")
        mkdir -p "$root$cwd"
        ;;
    COPY)
        read -r -a parts <<<"$args"
        [[ "${parts[0]}" == --* ]] &&
            die "Dockerfile: COPY ${parts[0]} in the build stage is not supported here"
        dst=$(abspath "${parts[-1]}")
        unset 'parts[-1]'
        for s in "${parts[@]}"; do
            [ -e "$ctx/$s" ] || die "Dockerfile: COPY $s: not in the build context"
            if [ "$s" = . ] || [ -d "$ctx/$s" ]; then
                mkdir -p "$root$dst"
                cp -a "$ctx/$s/." "$root$dst/"
            elif [[ "$dst" == */ ]]; then
                mkdir -p "$root$dst"
                cp -a "$ctx/$s" "$root$dst"
            else
                mkdir -p "$(dirname "$root$dst")"
                cp -a "$ctx/$s" "$root$dst"
            fi
        done
        ;;
    RUN)
        [[ "$args" == \[* ]] && die "Dockerfile: exec-form RUN is not supported here: $args"
        step=$((step + 1))
        log="$work/run-$step.log"
        start=$SECONDS
        if (cd "$root$cwd" && env -i "${envs[@]}" /bin/sh -c "$args") >"$log" 2>&1; then
            ok "RUN step $step ($((SECONDS - start)) s): ${args:0:90}"
        else
            tail -n 60 "$log"
            die "RUN step $step failed: $args"
        fi
        ;;
    LABEL) ;;
    *) die "Dockerfile: $word in the build stage is not supported by this script" ;;
    esac
done
[ "$stage" -ge 1 ] || fail "Dockerfile: no runtime stage after the build stage"
[ "$step" -ge 2 ] || fail "Dockerfile: expected at least two RUN steps in the build stage"

# --- what the runtime stage takes from the build stage and the context --------
bin="" image_path=""
for r in "${runtime[@]}"; do
    [[ "$r" == "COPY "* ]] || continue
    read -r -a parts <<<"${r#COPY }"
    dst="${parts[-1]}"
    from=""
    srcs=()
    for p in "${parts[@]::${#parts[@]}-1}"; do
        case "$p" in
        --from=*) from="${p#--from=}" ;;
        --*) ;;
        *) srcs+=("$p") ;;
        esac
    done
    for s in "${srcs[@]}"; do
        if [ -n "$from" ]; then
            if [ -e "$root$s" ]; then
                ok "COPY --from=$from $s exists"
            else
                fail "COPY --from=$from $s: missing after the build stage"
            fi
            found=$(find "$root$s" -type f -name tunneld 2>/dev/null | head -n 1)
            if [ -n "$found" ] && [ -z "$bin" ]; then
                bin="$found"
                if [ -d "$root$s" ]; then
                    image_path="${dst%/}/${found#"$root${s%/}/"}"
                else
                    image_path="$dst"
                fi
            fi
        else
            if [ -e "$ctx/$s" ]; then
                ok "COPY $s is in the build context"
            else
                fail "COPY $s: not in the build context"
            fi
        fi
    done
done

# --- the staged binary ----------------------------------------------------------
if [ -z "$bin" ]; then
    fail "the runtime stage copies no tunneld from the build stage"
else
    ok "the runtime stage copies ${bin#"$root"} to $image_path"
    case "$image_path" in
    /usr/local/bin/tunneld | /usr/bin/tunneld)
        ok "$image_path is on the image's PATH (ENTRYPOINT [\"tunneld\"])"
        ;;
    *) fail "$image_path is not on the default PATH: ENTRYPOINT [\"tunneld\"] misses it" ;;
    esac
    if ldd "$bin" | grep -q 'not found'; then
        fail "staged tunneld: $(ldd "$bin" | grep 'not found')"
    else
        ok "staged tunneld finds all its shared libraries"
    fi
    if help=$("$bin" --help 2>&1) && grep -q TUNNELD_PEERS_DNS <<<"$help"; then
        ok "staged tunneld --help runs and lists the fleet options"
    else
        fail "staged tunneld --help: $help"
    fi
    if out=$(env -i TUNNELD_DOMAIN=localhost "$bin" --check-config 2>&1); then
        ok "staged tunneld --check-config: $out"
    else
        fail "staged tunneld --check-config: $out"
    fi
    if readelf -d "$bin" | grep -E 'RPATH|RUNPATH' | grep -q "$work"; then
        fail "staged tunneld has a run path into the build tree"
    else
        ok "staged tunneld has no run path into the build tree"
    fi
fi
[ "$failed" -eq 0 ] && echo "dockerfile steps: passed" || echo "dockerfile steps: FAILED"
exit "$failed"
