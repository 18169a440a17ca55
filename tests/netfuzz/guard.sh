#!/usr/bin/env bash
# Runs netfuzz.mjs with a hard limit from outside the process (ctest runs
# this). netfuzz has its own watchdog, but a timer cannot fire while its
# event loop is blocked: past LIMIT seconds this script records where the
# process is (its threads' kernel waits, the process tree, a Node report
# with the JavaScript stack and open handles) on stderr, then kills it and
# fails. Usage: guard.sh LIMIT NODE [node args...]
set -u
limit=$1
shift
report_dir=$(mktemp -d "${TMPDIR:-/tmp}/netfuzz-report.XXXXXX")
node_bin=$1
shift
"$node_bin" --report-on-signal --report-signal=SIGUSR2 --report-directory="$report_dir" "$@" &
pid=$!
start=$(date +%s)
while kill -0 "$pid" 2>/dev/null; do
    if [ $(($(date +%s) - start)) -ge "$limit" ]; then
        {
            echo "netfuzz guard: still running after ${limit} s; where it is:"
            for t in /proc/"$pid"/task/*; do
                echo "thread ${t##*/}: $(cat "$t"/comm 2>/dev/null) state $(awk '{print $3}' "$t"/stat 2>/dev/null) wchan $(cat "$t"/wchan 2>/dev/null)"
            done
            tree=$pid
            for _ in 1 2 3; do
                for p in $tree; do tree="$tree $(pgrep -P "$p" | tr '\n' ' ')"; done
            done
            # shellcheck disable=SC2086
            ps -o pid,ppid,stat,etime,args -p "$(echo $tree | tr ' ' '\n' | sort -u | paste -sd,)" 2>/dev/null
            kill -USR2 "$pid" 2>/dev/null
            sleep 3
            for r in "$report_dir"/*.json; do
                [ -f "$r" ] || continue
                echo "--- Node report $r (JavaScript stack, libuv handles) ---"
                node -e 'const r=require(process.argv[1]);console.log(JSON.stringify({js:r.javascriptStack,handles:(r.libuv||[]).filter(h=>h.is_active).map(h=>({t:h.type,ref:h.is_referenced,fd:h.fd,details:h.details}))},null,1))' "$r" 2>&1 | head -120
            done
        } >&2
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        rm -rf "$report_dir"
        exit 124
    fi
    sleep 1
done
wait "$pid"
rc=$?
rm -rf "$report_dir"
exit "$rc"
