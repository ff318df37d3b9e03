#!/usr/bin/env bash
# Measures a Kairos node end to end and appends the results to docs/performance.md:
#   1. the harness against the fixed-body server, next to wrk (Debian) in the same run;
#   2. `kairos serve` on a temporary data directory, the three built-in scenarios at fixed
#      rates and at saturation (closed loop);
#   3. optionally (--with-in-process) the in-process benchmarks of Benchmarks/.
# Usage: tools/bench.sh [--seconds N] [--with-in-process] [--no-write]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"

seconds=10
in_process=0
write=1
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --with-in-process) in_process=1; shift ;;
        --no-write) write=0; shift ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

command -v wrk > /dev/null || { echo "bench.sh: installing wrk (Debian)" >&2; apt-get install -y -qq wrk > /dev/null; }
echo "bench.sh: building release binaries" >&2
swift build -c release --product kairos > /dev/null
swift build -c release --product kairos-load > /dev/null
bin=.build/release
work=$(mktemp -d)
results="$work/results.md"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

port_of() { # waits for "…:PORT" in a log file
    for _ in $(seq 1 200); do
        if grep -qoE "127\.0\.0\.1:[0-9]+" "$1" 2> /dev/null; then grep -oE "127\.0\.0\.1:[0-9]+" "$1" | head -1 | cut -d: -f2; return; fi
        sleep 0.1
    done
    echo "bench.sh: no port in $1" >&2; cat "$1" >&2; exit 1
}

{
    echo
    echo "## End-to-end run of \`tools/bench.sh\` — $(date -u +%Y-%m-%d) at $(git rev-parse --short HEAD), $(nproc) cores"
    echo
    echo "Command: \`tools/bench.sh --seconds $seconds\`. Client and server share the machine's cores."
    echo
} > "$results"

# 1. The harness against wrk on the fixed-body server (closed loop, 32 connections, 2 threads).
"$bin/kairos-load" fixed-server --port 0 > /dev/null 2> "$work/fixed.log" &
pids+=($!)
fixed=$(port_of "$work/fixed.log")
echo "bench.sh: wrk against the fixed-body server" >&2
wrk -t2 -c32 -d"${seconds}s" --latency "http://127.0.0.1:$fixed/" > "$work/wrk.txt"
echo "bench.sh: kairos-load against the fixed-body server" >&2
"$bin/kairos-load" run bare-get --port "$fixed" --rate 0 --connections 32 --duration "$seconds" --no-reconcile --quiet \
    --json "$work/bare.json" > /dev/null
python3 - "$work/wrk.txt" "$work/bare.json" >> "$results" << 'EOF'
import json, re, sys
text = open(sys.argv[1]).read()
def ms(value):
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
wrk_rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
wrk = {p: ms(re.search(rf"\s{p}%\s+(\S+)", text).group(1)) for p in ("50", "90", "99")}
op = [o for o in json.load(open(sys.argv[2]))["operations"] if o["operation"] == "get"][0]
ours = {"50": op["p50"], "90": op["p90"], "99": op["p99"]}
print("### The harness measures the server, not itself (fixed-body server, closed loop, 32 connections)")
print()
print("| client | req/s | p50 ms | p90 ms | p99 ms |")
print("| --- | ---: | ---: | ---: | ---: |")
print(f"| wrk -t2 -c32 | {wrk_rps:,.0f} | {wrk['50']:.3f} | {wrk['90']:.3f} | {wrk['99']:.3f} |")
print(f"| kairos-load bare-get | {op['throughputPerSecond']:,.0f} | {ours['50']:.3f} | {ours['90']:.3f} | {ours['99']:.3f} |")
ratio = op["throughputPerSecond"] / wrk_rps
print()
print(f"kairos-load reaches {100 * ratio:.0f} % of wrk's requests/s (target ≥ 80 %); "
      + ", ".join(f"p{p} differs by {100 * (ours[p] - wrk[p]) / wrk[p]:+.0f} %" for p in ("50", "90", "99")) + " (target within 20 %).")
print()
EOF
kill "${pids[0]}" 2> /dev/null || true

# 2. kairos serve on a temporary data directory.
"$bin/kairos" serve --data-dir "$work/data" --port 0 --stream-port 0 --snapshot-seconds 0 > "$work/serve.out" 2> "$work/serve.log" &
pids+=($!)
http=$(port_of "$work/serve.log")
stream=$(grep -oE "event stream on 127\.0\.0\.1:[0-9]+" "$work/serve.log" | cut -d: -f2)
key="$work/data/operator-key"
echo "| scenario | mode | operation | ok | errors | req/s | p50 ms | p99 ms | p99.9 ms | max ms | checks |" > "$work/table.md"
echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |" >> "$work/table.md"
run() { # scenario label extra-arguments…
    local scenario=$1 label=$2; shift 2
    echo "bench.sh: $scenario ($label)" >&2
    "$bin/kairos-load" run "$scenario" --port "$http" --stream-port "$stream" --operator-key-file "$key" --quiet \
        --json "$work/$scenario-$label.json" --html "docs/load-$scenario-$label.html" "$@" > /dev/null || true
    python3 - "$work/$scenario-$label.json" "$scenario" "$label" >> "$work/table.md" << 'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
checks = "passed" if not report["failures"] else "FAILED: " + "; ".join(report["failures"])
if report.get("campaign"):
    c = report["campaign"]
    checks += f"; campaign: {c['enrolled']:,} enrolled" + (f" at {c['enrolledSeconds']:.1f} s" if c.get("enrolledSeconds") else "")
for op in report["operations"]:
    errors = sum(op["errors"].values())
    print(f"| {sys.argv[2]} | {sys.argv[3]} | {op['operation']} | {op['succeeded']:,} | {errors:,} | {op['throughputPerSecond']:,.0f} "
          f"| {op['p50']:.2f} | {op['p99']:.2f} | {op['p999']:.2f} | {op['max']:.1f} | {checks} |")
    checks = ""
EOF
}
run site-traffic fixed-rate --duration "$seconds"
run site-traffic saturation --duration "$seconds" --rate 0
run event-firehose fixed-rate --duration "$seconds" --stream-rate 50000
run event-firehose saturation --duration "$seconds" --stream-rate 0 --rate 0
run campaign-burst fixed-rate --duration "$seconds"
{
    echo "### Built-in scenarios against \`kairos serve\` (fast durability, fresh data directory)"
    echo
    echo "Fixed rate: the scenario's own rates (site-traffic 2,000 req/s; event-firehose 50,000 frames/s; campaign-burst 500 req/s"
    echo "beside 100,000 campaign identifies as fast as the server takes them). Saturation: closed loop. HTML reports: docs/load-*.html."
    echo
    cat "$work/table.md"
    echo
} >> "$results"

if [ "$in_process" = 1 ]; then
    echo "bench.sh: in-process benchmarks (Benchmarks/)" >&2
    { echo "### In-process benchmarks"; echo; echo '```'; (cd Benchmarks && swift package --allow-writing-to-package-directory benchmark 2>&1 | tail -80); echo '```'; } >> "$results"
fi

cat "$results"
if [ "$write" = 1 ]; then
    cat "$results" >> docs/performance.md
    echo "bench.sh: appended to docs/performance.md" >&2
fi
