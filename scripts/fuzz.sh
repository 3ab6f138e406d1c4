#!/usr/bin/env bash
# Runs the cargo-fuzz targets, each for a bounded time, on the machine's
# stable toolchain (`cargo fuzz build -s none`: libFuzzer's coverage
# without the sanitizer flags that need nightly).
#
#   scripts/fuzz.sh [--seconds N] [--jobs J] [TARGET...]   # default: 60 s each, 2 at a time, all targets
#   scripts/fuzz.sh --report [TARGET...]                   # the last run's table again, from its logs
#
# Each target starts from the committed seeds (fuzz/seeds/TARGET: real
# manifests, stored objects, tar archives, configs, DNS answers, Docker
# stats, procfs files ...) and from what earlier runs kept
# (fuzz/corpus/TARGET, not committed). Prints one line per target: seconds
# run, executions, coverage (edges), corpus size, and what it found.
# Exit 1 when a target found something: a crash (crash-*, oom-*, leak-*),
# an input that ran over 30 s (timeout-*) or over 10 s (slow-unit-*), in
# fuzz/artifacts/TARGET/ (reproduce: fuzz/target/*/release/TARGET FILE).
set -euo pipefail

seconds=60 jobs=2 targets=() report=false
while (($#)); do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --report) report=true; shift ;;
    -h|--help) sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install --locked --quiet cargo-fuzz
((${#targets[@]})) || mapfile -t targets < <(cargo fuzz list)

run_one() {
  local t=$1
  mkdir -p "corpus/$t" "seeds/$t" "artifacts/$t"
  "$bin_dir/$t" "corpus/$t" "seeds/$t" -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=30 -report_slow_units=10 \
    -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"logs/$t.log" 2>&1 || true
}

if $report && [[ ! -e logs/.started ]]; then
  echo "no earlier run to report: run scripts/fuzz.sh first" >&2
  exit 2
fi
if ! $report; then
  cargo fuzz build -s none >&2
  bin_dir=$(dirname "$(ls -d target/*/release/"${targets[0]}")")
  mkdir -p logs
  # What this run finds is what appears after this mark (earlier findings
  # stay in artifacts/ but are not reported again).
  touch logs/.started
  export -f run_one
  export seconds bin_dir
  printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one {}'
fi

found=0
printf '| target | seconds | executions | coverage | corpus | found |\n|---|---|---|---|---|---|\n'
for t in "${targets[@]}"; do
  log=logs/$t.log
  if [[ ! -e $log ]]; then
    printf '| %s | - | - | - | - | not run |\n' "$t"
    continue
  fi
  # What libFuzzer says it ran ("Done N runs in S second(s)"), not what was asked.
  ran=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*$' || echo "?")
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -E '#[0-9]+.*(DONE|INITED|NEW|REDUCE|pulse)' "$log" | tail -1 | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || echo "?")
  corpus=$(find "corpus/$t" -type f | wc -l)
  crashes=$(find "artifacts/$t" -type f -newer logs/.started ! -name 'slow-unit-*' | wc -l)
  slow=$(find "artifacts/$t" -type f -newer logs/.started -name 'slow-unit-*' | wc -l)
  what="nothing"
  if ((crashes)); then
    found=1
    what="$crashes crashing or hanging input(s) in fuzz/artifacts/$t/: $(grep -m1 -E 'panicked at|ERROR: libFuzzer' "$log" | cut -c1-120 || true)"
  elif ((slow)); then
    found=1
    what="$slow slow input(s) in fuzz/artifacts/$t/: $(grep -m1 'Slowest unit' "$log" || true)"
  fi
  printf '| %s | %s | %s | %s | %s | %s |\n' "$t" "$ran" "$execs" "$cov" "$corpus" "$what"
done
exit "$found"
