#!/usr/bin/env bash
# What the private-subdomain gateway costs (issue 17's figures), in front of one real BIND:
#
#   loadtest/pvt.sh [--quick] [--duration N] [--repeats N] [--no-build] [--keep]
#
#   --quick        3-second runs, 1 repeat (default: 10 s, 3 repeats)
#   --duration N   seconds per load run
#   --repeats N    rounds of each load variant (medians are quoted)
#   --no-build     use target/release/dotgate as it is
#   --keep         keep the work folder (configs, keys, logs)
#
# One BIND 9 (named, core 1) holds _pvt.bench.test (dynamic, TSIG update-policy, transfer by the
# key only, check-names primary ignore). One dotgate (--workers 1, core 0) serves the gateway on
# a UDP/TCP port, DoT, and DNSENC with --dnsenc-cleartext all: the last is "plain UDP to the
# same BIND through dotgate", the baseline. User alice is registered with `www A` and `multi`
# (three A records).
#
# 1. Queries, interleaved round-robin, --repeats rounds:
#    pvt-max   `dotgate pvt load` (20,000 prepared signed queries for www A, 20 clients): the
#              most the gateway answers on one worker.
#    udp-max   dnsperf -m udp to the DNSENC port (cleartext), www.alice._pvt.bench.test A.
#    pvt-half, udp-half  both at half of pvt-max's median: CPU per query and latency at the
#              same load.
#    CPU per answered query is dotgate's (utime + stime from /proc), the latency the client's.
# 2. Bytes: per query and per answer of www A and of multi A (three records), from the load
#    tool's summary: (multi - www) / 2 is what one more answer record costs. Per UPDATE: the
#    test vector's UPDATE (tests/vectors/pvt/messages.txt). The longest relative name that
#    fits: docs/pvt.md.
# 3. UPDATEs (run after 4, so that the records they add leave 4's zone as it was), --repeats
#    rounds, each UPDATE adding a record of its own (names new to the zone in every run):
#    upd-gw-lat    `dotgate pvt load --updates -c 1 -w 1`: 2,000 signed, encrypted UPDATEs
#                  prepared before the run, one in flight: p50, p99 and mean latency.
#    upd-bind-lat  BIND's own `nsupdate -k` (TSIG), ONE process with a batch of 2,000 `update
#                  add` / `send` pairs, one in flight: its wall time less an empty batch's
#                  (the process start), divided by 2,000: mean latency.
#    upd-gw-max    `dotgate pvt load --updates -c 8 -w 2`: 4,000 UPDATEs, 16 in flight;
#                  UPDATEs per second to the last answer, and dotgate's CPU per UPDATE.
#    upd-bind-max  8 `nsupdate` processes at once (8 in flight), a batch of 500 each: 4,000
#                  over the wall time less an empty batch's.
#    (--quick: 500 one at a time, 1,000 at the rate.) Every UPDATE's record is then looked
#    for in BIND's zone (AXFR). BIND 9.18 fsyncs its journal twice per UPDATE (strace), so both
#    sides wait on the disk: right after heavy writes (a build, an install) an UPDATE took 4 ms
#    where it takes 0.7 on a quiet disk, for nsupdate and the gateway alike.
# 4. Register and destroy against zone size: user bob's subtree filled with 10, 1,000 and
#    10,000 records straight at BIND; then `dotgate pvt destroy` (bob) and `dotgate pvt
#    register` (a new user, with the zone that size) timed.
#
# Output: loadtest/results/<stamp>-pvt.csv and <stamp>-pvt.md, also printed. A whole run takes
# about 3 minutes on 2 cores (189 s on 2026-12-05, the UPDATE rounds under a minute of it).
set -euo pipefail
# shellcheck source=../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
enter_repo
bench_defaults
parse_options "$@"
prepare_run pvt
say "installing dependencies (bind9-dnsutils: nsupdate)"
bash scripts/install-deps.sh bind9-dnsutils </dev/null
need_tools_and_dotgate named tsig-keygen knsupdate nsupdate dnsperf kdig openssl taskset python3
write_bench_cert "$work"

zone=_pvt.bench.test
user_zone=alice.$zone
bind_port=""
dot_port=""
pvt_port=""
udp_port=""
admin_port=""
take_ports bind_port
say "starting BIND on 127.0.0.1:$bind_port, core $backend_cpu"
tsig-keygen -a hmac-sha256 pvt-gateway >"$work/tsig.key"
cat >"$work/$zone.zone" <<EOF
\$TTL 300
@ IN SOA gw.bench.test. hostmaster.bench.test. 1 3600 600 86400 60
@ IN NS ns.bench.test.
EOF
cat >"$work/named.conf" <<EOF
options {
    directory "$work";
    pid-file "$work/named.pid";
    session-keyfile "$work/session.key";
    listen-on port $bind_port { 127.0.0.1; };
    listen-on-v6 { none; };
    recursion no;
    dnssec-validation no;
    notify no;
    check-names primary ignore;
    tcp-clients 1000;
};
controls { };
include "$work/tsig.key";
zone "$zone" {
    type primary;
    file "$work/$zone.zone";
    update-policy { grant pvt-gateway subdomain $zone. ANY; };
    allow-transfer { key pvt-gateway; };
};
EOF
"${backend_pin[@]}" named -g -c "$work/named.conf" >"$work/named.log" 2>&1 &
unbound_pid=$! # the clean-up stops it by this name
bind_answers() { kdig @127.0.0.1 -p "$bind_port" +timeout=1 +retry=0 "$zone" SOA 2>/dev/null | grep -q NOERROR; }
wait_for 30 "$unbound_pid" named bind_answers || die "BIND did not start (see $work/named.log)"
secret=$(awk -F'"' '/secret/ { print $2 }' "$work/tsig.key")

"$dotgate_bin" pvt provider-keygen --zone "$zone" --out "$work/provider.key" >/dev/null
for u in alice bob; do "$dotgate_bin" pvt enroll --file "$work/enrolled" "$u" >/dev/null; done
mkdir -p "$work/dnsenc-keys"
"$dotgate_bin" dnsenc keygen --scheme x25519 --out "$work/dnsenc-keys" >/dev/null
take_ports dot_port pvt_port udp_port admin_port
gateway_answers() { kdig @127.0.0.1 -p "$pvt_port" +timeout=1 +retry=0 "$zone" KEY 2>/dev/null | grep -q NOERROR; }
start_bench_dotgate pvt gateway_answers --listen "127.0.0.1:$dot_port" --backend "127.0.0.1:$bind_port" \
  --pvt-listen "127.0.0.1:$pvt_port" --pvt-zone "$zone" --pvt-primary "127.0.0.1:$bind_port" \
  --pvt-tsig-key "$work/tsig.key" --pvt-provider-key "$work/provider.key" --pvt-enrollment "$work/enrolled" \
  --dnsenc-listen "127.0.0.1:$udp_port" --dnsenc-key "$work/dnsenc-keys"/*.key --dnsenc-cleartext all

pvt() { "$dotgate_bin" pvt "$1" "@127.0.0.1:$pvt_port" --zone "$2" --key "$3" "${@:4}"; }
"$dotgate_bin" pvt keygen --out "$work/alice.key" >/dev/null
pvt register "$user_zone" "$work/alice.key" >/dev/null || die "alice could not register"
pvt add "$user_zone" "$work/alice.key" 'www 300 A 192.0.2.1' >/dev/null || die "could not add www"
for i in 1 2 3; do pvt add "$user_zone" "$work/alice.key" "multi 300 A 192.0.2.1$i" >/dev/null; done
pvt query "$user_zone" "$work/alice.key" www A | grep -q '192\.0\.2\.1$' || die "www A is not answered through the gateway"
echo "www A" >"$work/q-www"
echo "multi A" >"$work/q-multi"
echo "www.$user_zone A" >"$work/plain"
kdig @127.0.0.1 -p "$udp_port" +timeout=1 +retry=0 "www.$user_zone" A | grep -q '192\.0\.2\.1$' ||
  die "the plain baseline (DNSENC cleartext) does not answer www"

csv_line variant round qps completed lost cpu_us_per_query p50_ms p99_ms mean_ms bytes_query bytes_answer rcodes >"$csv"
# measure VARIANT ROUND CMD...: runs CMD as the client, records qps, CPU per answered query of
# dotgate, latency and bytes; sets measured_sent to the queries (or UPDATEs) it sent.
measure() {
  local variant=$1 round=$2 before after out=$work/$1-$2.out sent completed lost qps rcodes p50 p99 mean bq ba
  shift 2
  before=$(tree_ticks "$server_pid")
  run_client "$out" "$@"
  after=$(tree_ticks "$server_pid")
  [ "$client_status" = ok ] || die "$variant: the client failed ($client_status): $(tail -n 3 "$out.err")"
  read -r sent completed lost qps rcodes <<<"$(dnsperf_counts "$out")"
  # At a maximum the relay may time out a few queries under overload (SERVFAIL): tolerated up
  # to 0.1%, and kept in the CSV; anything else is an error.
  local noerror_pct
  noerror_pct=$(sed -n 's/^NOERROR [0-9]* (\([0-9.]*\)%).*/\1/p' <<<"$rcodes")
  awk -v p="${noerror_pct:-0}" 'BEGIN { exit !(p >= 99.9) }' || die "$variant: answers other than NOERROR ($rcodes)"
  if [[ $variant == pvt-* || $variant == upd-gw-* ]]; then
    p50=$(dnsperf_field "Latency p50 (ms):" "$out")
    p99=$(dnsperf_field "Latency p99 (ms):" "$out")
    mean=$(dnsperf_field "Average Latency (ms):" "$out")
    bq=$(dnsperf_field "Bytes per query:" "$out")
    ba=$(dnsperf_field "Bytes per answer:" "$out")
  else
    read -r p50 p99 _ <<<"$(steady_latency "$out" "${rate_now:-0}")"
    mean=-
    bq=-
    ba=-
  fi
  local cpu
  cpu=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$completed" \
    'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
  csv_line "$variant" "$round" "$qps" "$completed" "$lost" "$cpu" "$p50" "$p99" "$mean" "$bq" "$ba" "$rcodes" >>"$csv"
  say "$variant #$round: $qps qps, $cpu us/query dotgate CPU, p50 $p50 ms, p99 $p99 ms, lost $lost of $sent"
  measured_sent=$sent
}
# The two clients (arrays: run_client runs them pinned, through taskset).
pvt_load=("$dotgate_bin" pvt load "@127.0.0.1:$pvt_port" --zone "$user_zone" --key "$work/alice.key"
  --prepared 20000 -c 20 -l "$duration")
udp_load=(dnsperf -m udp -s 127.0.0.1 -p "$udp_port" -d "$work/plain" -c 20 -q 200 -l "$duration" -v)

check_quiet
for round in $(seq 1 "$repeats"); do
  rate_now=0
  measure pvt-max "$round" "${pvt_load[@]}" -f "$work/q-www"
  measure udp-max "$round" "${udp_load[@]}"
done
half=$(awk -F, '$1 == "pvt-max" { print $3 }' "$csv" | sort -n | awk '{ a[NR] = $1 } END { printf "%d", a[int((NR + 1) / 2)] / 2 }')
say "both at $half qps (half the gateway's median maximum)"
for round in $(seq 1 "$repeats"); do
  rate_now=$half
  measure pvt-half "$round" "${pvt_load[@]}" -f "$work/q-www" -Q "$half"
  measure udp-half "$round" "${udp_load[@]}" -Q "$half"
done
rate_now=0
measure pvt-multi 1 "${pvt_load[@]}" -f "$work/q-multi" -Q 500

# ---- register and destroy against zone size ------------------------------------------------------
# fill USER N: N A records below USER's zone, straight at BIND (1,000 to an UPDATE).
fill() {
  local i=0 batch
  while [ "$i" -lt "$2" ]; do
    batch=$(printf 'server 127.0.0.1 %s\nzone %s\n' "$bind_port" "$zone"
      for j in $(seq "$i" $((i + 999 < $2 - 1 ? i + 999 : $2 - 1))); do
        printf 'update add r%s.%s.%s 300 IN A 198.51.100.%s\n' "$j" "$1" "$zone" $((j % 250 + 1))
      done
      printf 'send\n')
    knsupdate -y "hmac-sha256:pvt-gateway:$secret" <<<"$batch" >/dev/null || die "filling $1's zone failed"
    i=$((i + 1000))
  done
}
sizes=(10 1000 10000)
[ "$quick" = 1 ] && sizes=(10 1000)
declare -A register_s destroy_s
n=0
for size in "${sizes[@]}"; do
  n=$((n + 1))
  "$dotgate_bin" pvt keygen --out "$work/bob$n.key" >/dev/null
  pvt register "bob.$zone" "$work/bob$n.key" >/dev/null || die "bob could not register"
  fill bob "$size"
  "$dotgate_bin" pvt enroll --file "$work/enrolled" "new$n" >/dev/null
  "$dotgate_bin" pvt keygen --out "$work/new$n.key" >/dev/null
  start=$(now_s)
  pvt register "new$n.$zone" "$work/new$n.key" >/dev/null || die "new$n could not register"
  register_s[$size]=$(awk -v a="$start" -v b="$(now_s)" 'BEGIN { printf "%.3f", b - a }')
  start=$(now_s)
  pvt destroy "bob.$zone" "$work/bob$n.key" >/dev/null || die "bob's zone of $size records was not destroyed"
  destroy_s[$size]=$(awk -v a="$start" -v b="$(now_s)" 'BEGIN { printf "%.3f", b - a }')
  left=$(kdig @127.0.0.1 -p "$bind_port" -y "hmac-sha256:pvt-gateway:$secret" AXFR "$zone" | grep -c "bob\.$zone" || true)
  [ "$left" = 0 ] || die "$left records of bob left after destroy"
done

# ---- UPDATEs --------------------------------------------------------------------------------------
upd_lat_n=2000
upd_max_n=4000
upd_procs=8
[ "$quick" = 1 ] && upd_lat_n=500 upd_max_n=1000
# nsupdate_batch FILE PREFIX COUNT: COUNT `update add PREFIX<i>.<alice's zone> A` / `send` pairs
# for nsupdate, straight to BIND (an empty batch when COUNT is 0). `check-names no`: nsupdate
# checks owners itself, and an A record below `_pvt` fails (BIND has check-names ignore).
nsupdate_batch() {
  awk -v port="$bind_port" -v zone="$zone" -v user="$user_zone" -v p="$2" -v n="$3" 'BEGIN {
    printf "server 127.0.0.1 %s\nzone %s\ncheck-names no\n", port, zone
    for (i = 0; i < n; i++) printf "update add %s%d.%s 300 IN A 192.0.2.%d\nsend\n", p, i, user, i % 254 + 1
  }' >"$1"
}
# time_nsupdates FILE...: one nsupdate (TSIG key, client core) per batch FILE, all at once;
# sets nsupdate_wall to their wall time in seconds, and dies when one fails.
time_nsupdates() {
  local i pids=() start
  start=$(now_s)
  for i in $(seq 1 $#); do
    "${client_pin[@]}" nsupdate -k "$work/tsig.key" "${!i}" >"${!i}.out" 2>&1 </dev/null &
    pids+=("$!")
    client_pids+=("$!")
  done
  for i in $(seq 1 $#); do
    wait "${pids[i - 1]}" || die "nsupdate failed on ${!i}: $(tail -n 3 "${!i}.out")"
    forget_pid "${pids[i - 1]}"
  done
  nsupdate_wall=$(awk -v a="$start" -v b="$(now_s)" 'BEGIN { printf "%.6f", b - a }')
}
# bind_updates VARIANT ROUND PREFIX TOTAL PROCS: TOTAL adds straight to BIND by PROCS nsupdate
# processes at once (TOTAL / PROCS each); the CSV gets UPDATEs per second and the mean latency
# per process, both from the wall time less an empty batch's (nsupdate's start).
bind_updates() {
  local variant=$1 round=$2 prefix=$3 total=$4 procs=$5 files=() empty=() i wall idle net
  for i in $(seq 1 "$procs"); do
    nsupdate_batch "$work/$variant-$round-$i.batch" "$prefix$i-" $((total / procs))
    nsupdate_batch "$work/$variant-$round-$i.empty" x 0
    files+=("$work/$variant-$round-$i.batch")
    empty+=("$work/$variant-$round-$i.empty")
  done
  time_nsupdates "${empty[@]}"
  idle=$nsupdate_wall
  time_nsupdates "${files[@]}"
  wall=$nsupdate_wall
  net=$(awk -v w="$wall" -v i="$idle" 'BEGIN { printf "%.6f", w - i }')
  local qps mean
  qps=$(awk -v n="$total" -v t="$net" 'BEGIN { printf "%.2f", n / t }')
  mean=$(awk -v n="$total" -v p="$procs" -v t="$net" 'BEGIN { printf "%.3f", t * 1000 / (n / p) }')
  csv_line "$variant" "$round" "$qps" "$total" - - - - "$mean" - - - >>"$csv"
  say "$variant #$round: $total UPDATEs by $procs nsupdate in ${wall}s (start ${idle}s): $qps a second, mean $mean ms"
}
# gateway_updates VARIANT ROUND PREFIX COUNT LOAD-ARGS...: COUNT UPDATEs through the gateway by
# `dotgate pvt load --updates`, measured as the queries are; all must have been sent.
gateway_updates() {
  local variant=$1 round=$2 prefix=$3 count=$4
  shift 4
  measure "$variant" "$round" "$dotgate_bin" pvt load "@127.0.0.1:$pvt_port" --zone "$user_zone" \
    --key "$work/alice.key" --updates --prepared "$count" --name-prefix "$prefix" -l 50 "$@"
  [ "$measured_sent" = "$count" ] || die "$variant: sent $measured_sent of $count UPDATEs within 50 s"
}
say "UPDATEs: $upd_lat_n one at a time, $upd_max_n as fast as they go; through the gateway and straight to BIND"
declare -A upd_expected
# The writes before (section 4's fill, the logs) flushed first: BIND's fsyncs would wait on them.
sync
for round in $(seq 1 "$repeats"); do
  gateway_updates upd-gw-lat "$round" "gl$round-" "$upd_lat_n" -c 1 -w 1
  bind_updates upd-bind-lat "$round" "bl$round-" "$upd_lat_n" 1
  gateway_updates upd-gw-max "$round" "gm$round-" "$upd_max_n" -c "$upd_procs" -w 2
  bind_updates upd-bind-max "$round" "bm$round-" "$upd_max_n" "$upd_procs"
  upd_expected[gl$round-]=$upd_lat_n
  upd_expected[bl$round-]=$upd_lat_n
  upd_expected[gm$round-]=$upd_max_n
  upd_expected[bm$round-]=$upd_max_n
done
# Every UPDATE's record is in the zone: names below alice by their first label's prefix
# (bl1-1-7 and gl1-7 are bl1- and gl1-).
kdig @127.0.0.1 -p "$bind_port" -y "hmac-sha256:pvt-gateway:$secret" AXFR "$zone" >"$work/after-updates.axfr"
for prefix in "${!upd_expected[@]}"; do
  got=$(awk -v p="$prefix" -v s=".$user_zone." '$4 == "A" && index($1, p) == 1 && substr($1, length($1) - length(s) + 1) == s' \
    "$work/after-updates.axfr" | wc -l)
  [ "$got" = "${upd_expected[$prefix]}" ] || die "$got records named $prefix* in BIND's zone, not ${upd_expected[$prefix]}"
done

update_bytes=$(awk -F' = ' '$1 == "update" { print length($2) / 2 }' tests/vectors/pvt/messages.txt)
python3 - "$csv" "$md" "$upd_lat_n $upd_max_n $upd_procs" "$update_bytes" \
  "$(run_note "$busy_start" | sed 's/, Unbound [^,]*,/,/'), BIND $(named -v | awk '{ print $2 }')" \
  "$(for s in "${sizes[@]}"; do printf '%s:%s:%s ' "$s" "${register_s[$s]}" "${destroy_s[$s]}"; done)" <<'PYEOF'
import csv, statistics, sys
path, md, upd, update_bytes, note, sizes = sys.argv[1:]
lat_n, max_n, procs = (int(n) for n in upd.split())
rows = list(csv.DictReader(open(path)))
def values(variant, field):
    return [float(r[field]) for r in rows if r["variant"] == variant and r[field] not in ("-", "")]
def med(variant, field):
    found = values(variant, field)
    return statistics.median(found) if found else float("nan")
def spread(variant, field, form):
    """The median and, when there were several runs, their range: `m (lo to hi)`."""
    found = values(variant, field)
    if len(found) < 2:
        return format(med(variant, field), form)
    return f"{format(med(variant, field), form)} ({format(min(found), form)} to {format(max(found), form)})"
out = [f"# Private-subdomain gateway: loadtest/pvt.sh", "", note, "",
       "## Queries on one worker (medians)", "",
       "| variant | qps | dotgate CPU us/query | p50 ms | p99 ms |", "|---|---|---|---|---|"]
for v in ["pvt-max", "udp-max", "pvt-half", "udp-half"]:
    out.append(f"| {v} | {med(v,'qps'):.0f} | {med(v,'cpu_us_per_query'):.1f} | {med(v,'p50_ms'):.3f} | {med(v,'p99_ms'):.3f} |")
ratio = med("pvt-half", "cpu_us_per_query") / med("udp-half", "cpu_us_per_query")
out += ["", f"At the same rate the gateway costs {ratio:.1f}x the CPU of plain UDP through dotgate; "
        f"its maximum is {med('pvt-max','qps') / med('udp-max','qps'):.2f}x plain UDP's.", "",
        "## Bytes", "",
        f"- per query (www A): {med('pvt-max','bytes_query'):.0f}; per answer with one record: {med('pvt-max','bytes_answer'):.0f}; "
        f"with three: {med('pvt-multi','bytes_answer'):.0f}, so {(med('pvt-multi','bytes_answer') - med('pvt-max','bytes_answer')) / 2:.0f} per answer record",
        f"- per UPDATE adding one A record (the test vector): {update_bytes}", "",
        "## UPDATEs, each adding its own A record (medians, the runs' range in brackets)", "",
        "| figure | through the gateway | straight to BIND (`nsupdate`, TSIG) |", "|---|---|---|",
        f"| latency, one at a time: mean ms | {spread('upd-gw-lat','mean_ms','.3f')} | {spread('upd-bind-lat','mean_ms','.3f')} |",
        f"| latency, one at a time: p50 / p99 ms | {med('upd-gw-lat','p50_ms'):.3f} / {med('upd-gw-lat','p99_ms'):.3f} | - |",
        f"| rate: UPDATEs a second | {spread('upd-gw-max','qps','.0f')} | {spread('upd-bind-max','qps','.0f')} |",
        f"| dotgate CPU us per UPDATE (one at a time / at the rate) | {med('upd-gw-lat','cpu_us_per_query'):.1f} / {med('upd-gw-max','cpu_us_per_query'):.1f} | - |",
        "",
        f"- Gateway latency: `dotgate pvt load --updates -c 1 -w 1`, {lat_n:,} SIG(0)-signed, encrypted UPDATEs prepared before the run, one in flight; the tool's mean, p50 and p99.",
        f"- BIND latency: one `nsupdate -k` process, a batch of {lat_n:,} `update add`/`send` pairs (one in flight); its wall time less an empty batch's (the process start), over {lat_n:,}.",
        f"- Gateway rate: `dotgate pvt load --updates -c {procs} -w 2` ({procs * 2} in flight), {max_n:,} UPDATEs; completed over the time to the last answer.",
        f"- BIND rate: {procs} `nsupdate -k` processes at once ({procs} in flight), {max_n // procs:,} each; {max_n:,} over the wall time less an empty batch's.",
        "- dotgate CPU: utime + stime from /proc over the run, per answered UPDATE. Every record added is checked in BIND's zone (AXFR) afterwards.",
        "",
        f"One at a time, an UPDATE through the gateway takes {med('upd-gw-lat','mean_ms') - med('upd-bind-lat','mean_ms'):.3f} ms more than straight to BIND "
        "(the SIG(0) check, two HPKE opens, and a fresh KEY read and the TSIG UPDATE, each on a TCP connection of its own to BIND); "
        f"at the most each goes, the gateway's rate is {med('upd-gw-max','qps') / med('upd-bind-max','qps'):.2f}x nsupdate's. "
        "BIND fsyncs its journal twice per UPDATE, so both sides' times follow the disk's.",
        "",
        "## Register and destroy against zone size", "", "| records in the zone | register s | destroy s |", "|---|---|---|"]
for item in sizes.split():
    size, register, destroy = item.split(":")
    out.append(f"| {size} | {register} | {destroy} |")
open(md, "w").write("\n".join(out) + "\n")
PYEOF
finish_report
