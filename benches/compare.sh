#!/usr/bin/env bash
# Side by side, in one run: backupctl against what a user would otherwise
# run to back up a directory to local disk, and the matching restores.
#
#   benches/compare.sh [--size MIB] [--rounds N] [--rss-size MIB] [--workdir DIR]
#                      [--s3|--s3-only] [--pg|--pg-only] [--pg-scale N]
#
# Tools: backupctl; `tar | zstd -3 -T0 | age` (the same work in three
# processes); restic (repository v2, compression auto); and
# `tar | gzip | openssl enc` (the classic cron script).
#
# The corpus (~SIZE MiB) mixes a SQL dump, access logs, incompressible
# media and a tree of ~30k small files; see benches/src/corpus.rs. Every
# measurement runs ROUNDS times, tools interleaved; before each run the
# tool's input is read once (the host evicts "cold" page cache on its own,
# which otherwise makes whichever tool runs after a big write read from
# disk) and the disk is synced. The table shows medians. Peak RSS of a pipeline is the sum of its
# processes' peaks. Restores go to fresh directories on the work disk and
# the last round of each is compared with the corpus (diff -r).
# A last step backs up a second corpus of RSS-SIZE MiB and reports
# backupctl's peak RSS, to show memory does not grow with the input.
# With --s3, a Garage server on loopback (scripts/test-services.sh) is
# started and the same corpus is backed up to it with backupctl (16 MiB
# parts, concurrency 4) and with `tar | zstd | age | aws s3 cp -` (awscli
# from PyPI), then the RSS-SIZE corpus with backupctl. --s3-only skips the
# local comparison.
# With --pg, the PostgreSQL test server (scripts/test-services.sh) gets a
# pgbench database of scale PG-SCALE (default 64, ~1 GB) and it is backed up
# by backupctl (pg_dump in a snapshot plus exact row counts of every table)
# and by the pipelines users write: `pg_dump -Fc -Z0 | zstd -3 -T0 | age`,
# `pg_dump -Fc | age` and `pg_dump | gzip | openssl enc`. --pg-only skips
# the local comparison.
set -euo pipefail

size=1024 rounds=3 rss_size=4096 work=${TMPDIR:-/tmp}/shipshape-compare s3=false local=true
pg=false pg_scale=64
while (($#)); do
  case $1 in
    --size) size=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --rss-size) rss_size=$2; shift 2 ;;
    --workdir) work=$2; shift 2 ;;
    --s3) s3=true; shift ;;
    --s3-only) s3=true local=false; shift ;;
    --pg) pg=true; shift ;;
    --pg-only) pg=true local=false; shift ;;
    --pg-scale) pg_scale=$2; shift 2 ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh --bench
cargo build --release --locked --quiet -p backupctl -p shipshape-benches --bin backupctl --bin corpus
bctl=$root/target/release/backupctl
mkdir -p "$work"
work=$(cd "$work" && pwd)
out=$work/out
T="/usr/bin/time -f %M -a -o $work/rss"

corpus() { # SIZE -> path of a generated corpus
  local dir=$work/corpus-$1
  if [[ ! -e $dir/.complete ]]; then
    echo "generating a $1 MiB corpus in $dir" >&2
    rm -rf "$dir"
    "$root/target/release/corpus" "$dir" "$1"
    touch "$dir/.complete"
  fi
  echo "$dir"
}
src=""
if $local || $s3; then src=$(corpus "$size"); fi

if [[ ! -e $work/key.txt ]]; then
  age-keygen -o "$work/key.txt" 2>/dev/null
fi
chmod 600 "$work/key.txt"
recipient=$(age-keygen -y "$work/key.txt")
export RESTIC_PASSWORD=shipshape-benchmark BENCH_PASS=shipshape-benchmark
export RESTIC_CACHE_DIR=$work/restic-cache

# label -> shell command; outputs go under $out.
declare -A backup=(
  [backupctl]="$T $bctl backup '$src' --repo '$out/bctl' -R $recipient -q >/dev/null"
  ["tar|zstd|age"]="$T tar -C '$src' -cf - . | $T zstd -3 -T0 -q | $T age -r $recipient > '$out/base.tar.zst.age'"
  [restic]="$T restic -r '$out/restic' backup --quiet --compression auto '$src'"
  ["tar|gzip|openssl"]="$T tar -C '$src' -cf - . | $T gzip -6 | $T openssl enc -aes-256-cbc -pbkdf2 -salt -pass env:BENCH_PASS > '$out/classic.tar.gz.enc'"
)
declare -A restore=(
  [backupctl]="$T $bctl restore latest --repo '$out/bctl' --identity '$work/key.txt' --target '$out/r-backupctl' -q"
  ["tar|zstd|age"]="$T age -d -i '$work/key.txt' '$out/base.tar.zst.age' | $T zstd -d -q | $T tar -x -C '$out/r-tar|zstd|age'"
  [restic]="$T restic -r '$out/restic' restore latest --target '$out/r-restic' --quiet"
  ["tar|gzip|openssl"]="$T openssl enc -d -aes-256-cbc -pbkdf2 -pass env:BENCH_PASS -in '$out/classic.tar.gz.enc' | $T gzip -d | $T tar -x -C '$out/r-tar|gzip|openssl'"
)
declare -A stored=(
  [backupctl]="$out/bctl"
  ["tar|zstd|age"]="$out/base.tar.zst.age"
  [restic]="$out/restic"
  ["tar|gzip|openssl"]="$out/classic.tar.gz.enc"
)
tools=(backupctl "tar|zstd|age" restic "tar|gzip|openssl")

declare -A bwall brss rwall rrss size_of
warm() { # read PATH's files so every tool starts from a warm page cache
  find "$1" -type f -exec cat {} + >/dev/null
}
run() { # COMMAND -> "wall rss" (rss summed over the pipeline's processes)
  : >"$work/rss"
  sync
  sleep 1
  local start end
  start=$(date +%s.%N)
  if ! bash -c "set -o pipefail; $1"; then
    echo "FAILED: $1" >&2
    echo "failed failed"
    return
  fi
  end=$(date +%s.%N)
  echo "$(echo "$end - $start" | bc) $(awk '{s += $1} END {print s}' "$work/rss")"
}

med() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
mib() { awk -v b="$1" 'BEGIN {printf "%.0f MiB", b / 1048576}'; }
if $local; then
echo "backing up $(du -sh "$src" | cut -f1) with each tool, $rounds rounds" >&2
for ((r = 1; r <= rounds; r++)); do
  for t in "${tools[@]}"; do
    rm -rf "${stored[$t]}"
    mkdir -p "$out"
    [[ $t == restic ]] && restic -r "$out/restic" init --repository-version 2 --quiet >/dev/null
    warm "$src"
    read -r w m < <(run "${backup[$t]}")
    [[ $w == failed ]] && exit 1
    bwall[$t]+="$w " brss[$t]+="$m "
    echo "  round $r $t: ${w}s ${m} KB" >&2
  done
done
for t in "${tools[@]}"; do
  size_of[$t]=$(du -sb "${stored[$t]}" | cut -f1)
done

echo "restoring with each tool, $rounds rounds" >&2
for ((r = 1; r <= rounds; r++)); do
  for t in "${tools[@]}"; do
    rm -rf "$out/r-$t"
    mkdir -p "$out/r-$t"
    [[ $t == backupctl ]] && rmdir "$out/r-$t" # backupctl creates it
    warm "${stored[$t]}"
    read -r w m < <(run "${restore[$t]}")
    [[ $w == failed ]] && exit 1
    rwall[$t]+="$w " rrss[$t]+="$m "
    echo "  round $r $t: ${w}s ${m} KB" >&2
  done
done
for t in "${tools[@]}"; do
  got=$out/r-$t
  [[ $t == restic ]] && got=$out/r-restic$src
  diff -r -q "$src" "$got" >/dev/null || { echo "restore by $t differs from the corpus" >&2; exit 1; }
done

base_b=$(echo "${bwall["tar|zstd|age"]}" | med)
base_r=$(echo "${rwall["tar|zstd|age"]}" | med)
base_s=${size_of["tar|zstd|age"]}

{
  echo "Corpus: $(du -sh --apparent-size "$src" | cut -f1) in $(find "$src" -type f | wc -l) files," \
    "$(nproc) cores, $rounds rounds (medians), $(date -u +%Y-%m-%d)."
  echo
  echo "| tool | backup wall | vs tar\\|zstd\\|age | backup peak RSS | stored | vs zstd -3 | restore wall | vs age\\|zstd\\|tar | restore peak RSS |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for t in "${tools[@]}"; do
    b=$(echo "${bwall[$t]}" | med) r=$(echo "${rwall[$t]}" | med)
    printf '| %s | %.2f s | %.2fx | %s | %s | %.3fx | %.2f s | %.2fx | %s |\n' \
      "${t//|/\\|}" "$b" "$(echo "$b / $base_b" | bc -l)" \
      "$(mib $(($(echo "${brss[$t]}" | med) * 1024)))" "$(mib "${size_of[$t]}")" \
      "$(echo "${size_of[$t]} / $base_s" | bc -l)" \
      "$r" "$(echo "$r / $base_r" | bc -l)" "$(mib $(($(echo "${rrss[$t]}" | med) * 1024)))"
  done
} | tee "$work/results.md"

if ((rss_size > 0)); then
  big=$(corpus "$rss_size")
  rm -rf "$out/bctl-big"
  warm "$big"
  read -r w m < <(run "$T $bctl backup '$big' --repo '$out/bctl-big' -R $recipient -q >/dev/null")
  warm "$big"
  read -r bw bm < <(run "$T tar -C '$big' -cf - . | $T zstd -3 -T0 -q | $T age -r $recipient > '$out/base-big.age'")
  rm -f "$out/base-big.age"
  {
    echo
    printf 'Memory with a %s MiB corpus: backupctl peak RSS %s (%.1f s); tar|zstd|age %s (%.1f s).\n' \
      "$rss_size" "$(mib $((m * 1024)))" "$w" "$(mib $((bm * 1024)))" "$bw"
  } | tee -a "$work/results.md"
fi
fi # $local
if $s3; then
  scripts/test-services.sh start garage >/dev/null
  # shellcheck disable=SC1091
  source target/test-services/env
  if ! command -v aws >/dev/null 2>&1; then
    echo "installing awscli from PyPI" >&2
    python3 -m pip install --quiet awscli
  fi
  export AWS_ACCESS_KEY_ID=$SHIPSHAPE_TEST_S3_KEY_ID AWS_SECRET_ACCESS_KEY=$SHIPSHAPE_TEST_S3_SECRET
  export AWS_REGION=$SHIPSHAPE_TEST_S3_REGION AWS_ENDPOINT_URL=$SHIPSHAPE_TEST_S3_ENDPOINT
  export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
  bucket=$SHIPSHAPE_TEST_S3_BUCKET
  mkdir -p "$out"
  s3opts="--s3-part-size 16MiB --s3-concurrency 4"
  declare -A s3wall s3rss
  s3tools=("backupctl → local" "backupctl → S3" "tar|zstd|age|aws s3 cp")
  declare -A s3cmd=(
    ["backupctl → local"]="$T $bctl backup '$src' --repo '$out/bctl' -R $recipient -q >/dev/null"
    ["backupctl → S3"]="$T $bctl backup '$src' --repo s3://$bucket/bench $s3opts -R $recipient -q >/dev/null"
    ["tar|zstd|age|aws s3 cp"]="$T tar -C '$src' -cf - . | $T zstd -3 -T0 -q | $T age -r $recipient | $T aws s3 cp --only-show-errors - s3://$bucket/bench-aws/base.tar.zst.age"
  )
  echo "backing up to S3 (Garage on loopback), $rounds rounds" >&2
  for ((r = 1; r <= rounds; r++)); do
    for t in "${s3tools[@]}"; do
      rm -rf "$out/bctl"
      warm "$src"
      read -r w m < <(run "${s3cmd[$t]}")
      [[ $w == failed ]] && exit 1
      s3wall[$t]+="$w " s3rss[$t]+="$m "
      echo "  round $r $t: ${w}s ${m} KB" >&2
    done
  done
  local_b=$(echo "${s3wall["backupctl → local"]}" | med)
  {
    echo
    echo "To S3 (Garage on loopback, same corpus; backupctl with 16 MiB parts, concurrency 4):"
    echo
    echo "| tool | backup wall | throughput vs backupctl → local | peak RSS |"
    echo "|---|---|---|---|"
    for t in "${s3tools[@]}"; do
      b=$(echo "${s3wall[$t]}" | med)
      printf '| %s | %.2f s | %.2fx | %s |\n' "${t//|/\\|}" "$b" \
        "$(echo "$local_b / $b" | bc -l)" "$(mib $(($(echo "${s3rss[$t]}" | med) * 1024)))"
    done
  } | tee -a "$work/results.md"
  if ((rss_size > 0)); then
    big=$(corpus "$rss_size")
    warm "$big"
    read -r w m < <(run "$T $bctl backup '$big' --repo s3://$bucket/bench-big $s3opts -R $recipient -q >/dev/null")
    printf '\nMemory with a %s MiB corpus to S3 (16 MiB parts, concurrency 4): backupctl peak RSS %s (%.1f s).\n' \
      "$rss_size" "$(mib $((m * 1024)))" "$w" | tee -a "$work/results.md"
  fi
fi
if $pg; then
  scripts/test-services.sh start postgres >/dev/null
  # shellcheck disable=SC1091
  source target/test-services/env
  pgbin=$SHIPSHAPE_TEST_PG_BIN
  admin=$SHIPSHAPE_TEST_PG_URL
  db=shipshape_bench_$pg_scale
  pgurl=${admin%/*}/$db
  if [[ $("$pgbin/psql" -X -tA -d "$admin" -c "SELECT 1 FROM pg_database WHERE datname = '$db'") != 1 ]]; then
    echo "creating a pgbench database of scale $pg_scale" >&2
    "$pgbin/psql" -X -q -d "$admin" -c "CREATE DATABASE $db"
    "$pgbin/pgbench" -i -s "$pg_scale" -I dtGvp -q "$pgurl" >/dev/null 2>&1
  fi
  dbsize=$("$pgbin/psql" -X -tA -d "$admin" -c "SELECT pg_size_pretty(pg_database_size('$db'))")
  mkdir -p "$out"
  pgtools=(backupctl "pg_dump -Z0|zstd|age" "pg_dump -Fc|age" "pg_dump|gzip|openssl")
  declare -A pgcmd=(
    [backupctl]="$T $bctl backup '$pgurl' --repo '$out/bctl-pg' -R $recipient -q >/dev/null"
    ["pg_dump -Z0|zstd|age"]="$T $pgbin/pg_dump -Fc -Z0 -d '$pgurl' | $T zstd -3 -T0 -q | $T age -r $recipient > '$out/pg.dump.zst.age'"
    ["pg_dump -Fc|age"]="$T $pgbin/pg_dump -Fc -d '$pgurl' | $T age -r $recipient > '$out/pg.dump.age'"
    ["pg_dump|gzip|openssl"]="$T $pgbin/pg_dump -d '$pgurl' | $T gzip -6 | $T openssl enc -aes-256-cbc -pbkdf2 -salt -pass env:BENCH_PASS > '$out/pg.sql.gz.enc'"
  )
  declare -A pgstored=(
    [backupctl]="$out/bctl-pg"
    ["pg_dump -Z0|zstd|age"]="$out/pg.dump.zst.age"
    ["pg_dump -Fc|age"]="$out/pg.dump.age"
    ["pg_dump|gzip|openssl"]="$out/pg.sql.gz.enc"
  )
  declare -A pgwall pgrss pgsize
  echo "backing up PostgreSQL database $db ($dbsize), $rounds rounds" >&2
  for ((r = 1; r <= rounds; r++)); do
    for t in "${pgtools[@]}"; do
      rm -rf "${pgstored[$t]}"
      read -r w m < <(run "${pgcmd[$t]}")
      [[ $w == failed ]] && exit 1
      pgwall[$t]+="$w " pgrss[$t]+="$m "
      echo "  round $r $t: ${w}s ${m} KB" >&2
    done
  done
  for t in "${pgtools[@]}"; do pgsize[$t]=$(du -sb "${pgstored[$t]}" | cut -f1); done
  drill_start=$(date +%s.%N)
  "$bctl" verify latest --repo "$out/bctl-pg" --identity "$work/key.txt" \
    --restore-test --scratch "$admin" -q >/dev/null
  drill=$(echo "$(date +%s.%N) - $drill_start" | bc)
  base_pg=$(echo "${pgwall["pg_dump -Z0|zstd|age"]}" | med)
  {
    echo
    echo "PostgreSQL: pgbench scale $pg_scale ($dbsize), server $("$pgbin/postgres" --version | awk '{print $3}') on loopback; backupctl includes exact row counts of every table in the dump's snapshot:"
    echo
    echo "| tool | backup wall | vs pg_dump -Z0\\|zstd\\|age | peak RSS | stored |"
    echo "|---|---|---|---|---|"
    for t in "${pgtools[@]}"; do
      b=$(echo "${pgwall[$t]}" | med)
      printf '| %s | %.2f s | %.2fx | %s | %s |\n' "${t//|/\\|}" "$b" \
        "$(echo "$b / $base_pg" | bc -l)" "$(mib $(($(echo "${pgrss[$t]}" | med) * 1024)))" \
        "$(mib "${pgsize[$t]}")"
    done
    echo
    printf 'backupctl verify --restore-test (restore into a scratch database, count every table, drop it): %.1f s.\n' "$drill"
  } | tee -a "$work/results.md"
fi
echo "results: $work/results.md" >&2
