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
# 3. UPDATEs: 100 `dotgate pvt add` one after another against 100 `knsupdate` adds straight to
#    BIND with the TSIG key (each a process, so both carry a process start).
# 4. Register and destroy against zone size: user bob's subtree filled with 10, 1,000 and
#    10,000 records straight at BIND; then `dotgate pvt destroy` (bob) and `dotgate pvt
#    register` (a new user, with the zone that size) timed.
#
# Output: loadtest/results/<stamp>-pvt.csv and <stamp>-pvt.md, also printed.
set -euo pipefail
# shellcheck source=../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
enter_repo
bench_defaults
parse_options "$@"
prepare_run pvt
need_tools_and_dotgate named tsig-keygen knsupdate dnsperf kdig openssl taskset python3
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

csv_line variant round qps completed lost cpu_us_per_query p50_ms p99_ms bytes_query bytes_answer rcodes >"$csv"
# measure VARIANT ROUND CMD...: runs CMD as the client, records qps, CPU per answered query of
# dotgate, latency and bytes.
measure() {
  local variant=$1 round=$2 before after out=$work/$1-$2.out sent completed lost qps rcodes p50 p99 bq ba
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
  if [[ $variant == pvt-* ]]; then
    p50=$(dnsperf_field "Latency p50 (ms):" "$out")
    p99=$(dnsperf_field "Latency p99 (ms):" "$out")
    bq=$(dnsperf_field "Bytes per query:" "$out")
    ba=$(dnsperf_field "Bytes per answer:" "$out")
  else
    read -r p50 p99 _ <<<"$(steady_latency "$out" "${rate_now:-0}")"
    bq=-
    ba=-
  fi
  local cpu
  cpu=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$completed" \
    'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
  csv_line "$variant" "$round" "$qps" "$completed" "$lost" "$cpu" "$p50" "$p99" "$bq" "$ba" "$rcodes" >>"$csv"
  say "$variant #$round: $qps qps, $cpu us/query dotgate CPU, p50 $p50 ms, p99 $p99 ms, lost $lost of $sent"
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

# ---- UPDATEs -------------------------------------------------------------------------------------
say "100 UPDATEs through the gateway, 100 straight to BIND"
start=$(now_s)
for i in $(seq 1 100); do pvt add "$user_zone" "$work/alice.key" "u$i 300 A 192.0.2.$((i % 250 + 1))" >/dev/null; done
gateway_update_s=$(awk -v a="$start" -v b="$(now_s)" 'BEGIN { printf "%.4f", (b - a) / 100 }')
start=$(now_s)
for i in $(seq 1 100); do
  printf 'server 127.0.0.1 %s\nzone %s\nupdate add d%s.%s 300 IN A 192.0.2.1\nsend\n' "$bind_port" "$zone" "$i" "$user_zone" |
    knsupdate -y "hmac-sha256:pvt-gateway:$secret" >/dev/null
done
direct_update_s=$(awk -v a="$start" -v b="$(now_s)" 'BEGIN { printf "%.4f", (b - a) / 100 }')

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

update_bytes=$(awk -F' = ' '$1 == "update" { print length($2) / 2 }' tests/vectors/pvt/messages.txt)
python3 - "$csv" "$md" "$gateway_update_s" "$direct_update_s" "$update_bytes" \
  "$(run_note "$busy_start" | sed 's/, Unbound [^,]*,/,/'), BIND $(named -v | awk '{ print $2 }')" \
  "$(for s in "${sizes[@]}"; do printf '%s:%s:%s ' "$s" "${register_s[$s]}" "${destroy_s[$s]}"; done)" <<'PYEOF'
import csv, statistics, sys
path, md, gw, direct, update_bytes, note, sizes = sys.argv[1:]
rows = list(csv.DictReader(open(path)))
def med(variant, field):
    values = [float(r[field]) for r in rows if r["variant"] == variant and r[field] not in ("-", "")]
    return statistics.median(values) if values else float("nan")
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
        "## UPDATEs, one after another (each a process)", "",
        f"- through the gateway (`dotgate pvt add`): {float(gw) * 1000:.1f} ms each, {1 / float(gw):.0f} a second",
        f"- straight to BIND (`knsupdate`, TSIG): {float(direct) * 1000:.1f} ms each, {1 / float(direct):.0f} a second", "",
        "## Register and destroy against zone size", "", "| records in the zone | register s | destroy s |", "|---|---|---|"]
for item in sizes.split():
    size, register, destroy = item.split(":")
    out.append(f"| {size} | {register} | {destroy} |")
open(md, "w").write("\n".join(out) + "\n")
PYEOF
finish_report
