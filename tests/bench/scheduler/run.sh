#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Scheduler throughput: 1,000 dummy agents (baic-agent-fleet, one process) in one resource
# group, 10,000 PENDING sessions of mixed sizes released at once, drained under fifo and
# under drf; beside Slurm (Debian slurm-wlm, one node) in the same run.
#
#   tests/bench/scheduler/run.sh [BUILD_DIR]       (root for Slurm; default <repo>/build)
#
# baic: `baic up --no-agent` in a scratch dir (BAIC_BENCH_DIR keeps one); its private
# PostgreSQL gets synchronous_commit = off (ALTER SYSTEM). The sessions are INSERTed with
# SQL exactly as POST /session with enqueueOnly writes them (sessions + kernels rows, status
# PENDING), while the resource group is inactive; then one statement activates the group and
# stamps enqueued_at, and the scheduler is woken. Measured from the database: placements
# committed per second (PENDING -> SCHEDULED, status_history timestamps) and the p50/p99
# enqueued_at -> SCHEDULED, per scheduler; then, once every session is RUNNING (the fleet's
# kernel_started), enqueued_at -> RUNNING and release -> last RUNNING, what the launches
# after the placements took. Manager RSS: VmHWM (peak) over the whole run.
# The API enqueue rate (POST /session enqueueOnly, sequential signed curl) is a separate line.
# Peer: slurmctld + slurmd (one node, CPUs=2), `sbatch --wrap=true` submissions/s sequential
# and with 4 parallel submitters, and submit -> job start latency one job at a time.
# Knobs: BENCH_AGENTS (1000), BENCH_SESSIONS (10000), BENCH_SCHEDULERS ("fifo drf"),
# BENCH_SLURM_N (200), BENCH_API_N (200), BENCH_WARMUP (BENCH_SESSIONS: a fifo drain of that many
# sessions first, not in the figures; 0 = none), BENCH_NO_SLURM=1, BENCH_PROFILE=1 (PostgreSQL's
# pg_stat_statements loaded: the statements that took most of its time in each drain,
# printed after it; costs a restart of the stack), BENCH_PERF=PREFIX (`perf record -a -g` over each
# drain, to PREFIX-SCHED.data; BENCH_PERF_ARGS replaces `-a -g -F 499`). Last line: key=value.
set -u
SRC=$(cd "$(dirname "$0")/../../.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
BAIC=$BUILD/core/cli/baic
FLEET=$BUILD/core/agent-fleet/baic-agent-fleet
SIGN=$SRC/tests/bench/sign.sh
NA=${BENCH_AGENTS:-1000}
NS=${BENCH_SESSIONS:-10000}
SCHEDS=${BENCH_SCHEDULERS:-fifo drf}
SLURM_N=${BENCH_SLURM_N:-200}
API_N=${BENCH_API_N:-200}
PY=/usr/bin/python3
for t in psql redis-cli curl openssl; do command -v $t >/dev/null || { echo "run.sh: $t missing" >&2; exit 77; }; done
[ -x "$FLEET" ] && [ -x "$BAIC" ] || { echo "run.sh: build baic and baic-agent-fleet first" >&2; exit 77; }

OWN_DIR=
if [ -n "${BAIC_BENCH_DIR:-}" ]; then W=$BAIC_BENCH_DIR; mkdir -p "$W"; else W=$(mktemp -d /tmp/baic-bench.XXXXXX); OWN_DIR=1; fi
chmod 711 "$W"
D=$W/data
FLEET_PID= MUNGE_PID= CTLD_PID= SLURMD_PID=
stop_pid() { [ -n "$1" ] && kill "$1" 2>/dev/null && for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done; }
cleanup() {
    stop_pid "$FLEET_PID"
    stop_pid "$SLURMD_PID"; stop_pid "$CTLD_PID"; stop_pid "$MUNGE_PID"
    "$BAIC" down --data-dir "$D" >/dev/null 2>&1
    [ -n "$OWN_DIR" ] && rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# ---------------------------------------------------------------- baic
"$BAIC" up --no-agent --data-dir "$D" >"$W/up.log" 2>&1 || { cat "$W/up.log"; exit 1; }
DSN=$(sed -n '/^\[db\]/,/^\[/s/^dsn *= *"\(.*\)"/\1/p' "$D/etc/manager.toml")
REDIS_PORT=$(sed -n '/^\[redis\]/,/^\[/s/^port *= *\([0-9]*\).*/\1/p' "$D/etc/manager.toml")
# Debian's psql is a perl wrapper (~50 ms of CPU a call): the real binary is called instead.
PSQL=$(ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -1)
PSQL=${PSQL:-psql}
sql() { "$PSQL" "$DSN" -qAt -v ON_ERROR_STOP=1 -c "$1"; }
sql "ALTER SYSTEM SET synchronous_commit = off" >/dev/null && sql "SELECT pg_reload_conf()" >/dev/null
# A statement slower than 1 s has its plan written to PostgreSQL's log (auto_explain, loaded
# by every new connection: the stack is restarted once for it); the manager logs it too
# (db_slow_statement). A drain that stalls can then be explained after the fact.
"$PSQL" "$DSN" -qAt -v ON_ERROR_STOP=1 -c "LOAD 'auto_explain'" \
    -c "ALTER SYSTEM SET session_preload_libraries = 'auto_explain'" \
    -c "ALTER SYSTEM SET auto_explain.log_min_duration = '1s'" >/dev/null
[ -n "${BENCH_PROFILE:-}" ] && sql "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
"$BAIC" down --data-dir "$D" >/dev/null 2>&1
"$BAIC" up --no-agent --data-dir "$D" >>"$W/up.log" 2>&1 || { cat "$W/up.log"; exit 1; }
[ -n "${BENCH_PROFILE:-}" ] && sql "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
MPID=$(cat "$D/run/manager.pid")
SECRET=$(cat "$D/etc/cluster_secret" 2>/dev/null)
[ -n "$SECRET" ] || SECRET=$(sed -n 's/^cluster_secret *= *"\(.*\)"/\1/p' "$D/etc/agent.toml" | head -1)
[ -n "$SECRET" ] || { echo "run.sh: no cluster secret under $D/etc" >&2; exit 1; }

# Keypairs for DRF to share between: the fixture user's own plus 7 more of the same user;
# no concurrency or slot quota (the policy's limit of 30 sessions would deny the test).
sql "UPDATE keypair_resource_policies SET max_concurrent_sessions = 0, max_pending_session_count = NULL,
     total_resource_slots = '{}', default_for_unspecified = 'UNLIMITED' WHERE name = 'default'" >/dev/null
sql "INSERT INTO keypairs (access_key, secret_key, user_id, \"user\", is_active, is_admin, resource_policy, rate_limit)
     SELECT 'AKBENCH' || lpad(g::text, 13, '0'), md5(g::text), k.user_id, k.\"user\", true, false, 'default', 100000
     FROM (SELECT user_id, \"user\" FROM keypairs WHERE NOT is_admin LIMIT 1) k, generate_series(1, 7) g
     ON CONFLICT DO NOTHING" >/dev/null

# The image every bench session names (what an image rescan would have registered).
sql "INSERT INTO images (name, project, image, tag, registry, architecture, labels, resources)
     VALUES ('cr.backend.ai/stable/python:3.11', 'stable', 'stable/python', '3.11', 'cr.backend.ai', 'x86_64',
       '{\"ai.backend.resource.min.cpu\": \"1\"}', '{\"cpu\": {\"min\": \"1\"}, \"mem\": {\"min\": \"268435456\"}}')
     ON CONFLICT DO NOTHING" >/dev/null

start_fleet() {
    BAIC_CLUSTER_SECRET=$SECRET "$FLEET" -n "$NA" --redis "127.0.0.1:$REDIS_PORT" --scaling-group default \
        --slots cpu=64,mem=256g >"$W/fleet.out" 2>"$W/fleet.log" &
    FLEET_PID=$!
}
# All NA agents ALIVE with a heartbeat newer than $1 (a timestamp from the database).
wait_agents() {
    local since=$1 n end=$(( $(date +%s) + 60 ))
    while [ "$(date +%s)" -lt $end ]; do
        n=$(sql "SELECT count(*) FROM agents WHERE status = 'ALIVE' AND heartbeat_at > '$since'")
        [ "$n" = "$NA" ] && return 0
        sleep 0.5
    done
    echo "run.sh: only $n of $NA agents alive (see $W/fleet.log, $D/log/manager.log)" >&2; return 1
}

# The same rows POST /session (enqueueOnly) inserts, for NS sessions over the 8 keypairs,
# sizes cpu 1/2/4 x mem 1/2/4/8 GiB mixed (all fit: NA x 64 CPUs, 256 GiB).
enqueue() {
    sql "UPDATE scaling_groups SET is_active = false WHERE name = 'default'" >/dev/null
    sql "WITH kp AS (SELECT row_number() OVER (ORDER BY k.access_key) - 1 AS i, k.access_key, u.uuid, u.domain_name,
           (SELECT id FROM groups WHERE name = 'default' AND domain_name = u.domain_name) AS gid
         FROM keypairs k JOIN users u ON u.uuid = k.\"user\" WHERE NOT k.is_admin),
     nkp AS (SELECT count(*) AS n FROM kp),
     src AS (SELECT g, kp.access_key, kp.uuid, kp.domain_name, kp.gid,
               jsonb_build_object('cpu', (ARRAY['1','2','4','1'])[1 + g % 4],
                 'mem', ((ARRAY[1,2,4,8])[1 + (g / 4) % 4]::bigint << 30)::text) AS slots
             FROM generate_series(0, $NS - 1) g, nkp, kp WHERE kp.i = g % nkp.n),
     s AS (INSERT INTO sessions (name, session_type, priority, cluster_mode, cluster_size, domain_name,
             group_id, user_uuid, access_key, scaling_group_name, target_sgroup_names, images,
             architecture, requested_slots, resource_opts, status, status_changed, enqueued_at, status_history)
           SELECT 'bench-' || g, 'batch', 10, 'single-node', 1, domain_name, gid, uuid, access_key, 'default',
             ARRAY['default']::varchar(64)[], ARRAY['cr.backend.ai/stable/python:3.11']::varchar(512)[],
             'x86_64', slots, '{}', 'PENDING', now(), now(), jsonb_build_object('PENDING', now()::text)
           FROM src RETURNING id, name, access_key, user_uuid, domain_name, group_id, requested_slots)
     INSERT INTO kernels (session_id, session_name, session_type, cluster_mode, cluster_size, cluster_role,
       cluster_idx, cluster_hostname, scaling_group, domain_name, group_id, user_uuid, access_key, image,
       architecture, registry, tag, requested_slots, resource_opts, environ, status, status_changed, status_history)
     SELECT s.id, s.name, 'batch', 'single-node', 1, 'main', 0, 'main1', 'default', s.domain_name, s.group_id,
       s.user_uuid, s.access_key, 'cr.backend.ai/stable/python:3.11', 'x86_64', 'cr.backend.ai', NULL,
       s.requested_slots, '{}', '{}', 'PENDING', now(), jsonb_build_object('PENDING', now()::text) FROM s" >/dev/null
}

pg_pids() { ps -o pid= --ppid "$(head -1 "$D/pg/postmaster.pid")"; }
sched_pid() { sql "SELECT pid FROM pg_stat_activity WHERE application_name = 'baic-scheduler' LIMIT 1"; }

# Releases the queue, waits for it to drain; sets RATE P50 P99 DRAIN_S for scheduler $1,
# and the CPU seconds spent meanwhile (manager, scheduler's PostgreSQL backend, all of
# PostgreSQL, the fleet) with the load average at the end (other work on the machine).
run_sched() {
    local sched=$1 t0 T0_MS spid
    sql "UPDATE scaling_groups SET scheduler = '$sched' WHERE name = 'default'" >/dev/null
    enqueue || exit 1
    sql "UPDATE sessions SET enqueued_at = now(), status_history = jsonb_build_object('PENDING', now()::text)
         WHERE status = 'PENDING'" >/dev/null
    # The rows of the previous drain (deleted by reset_cluster) and of the update above
    # vacuumed, and the new queue's statistics taken, before the clock starts, as autovacuum
    # would between two bursts; else the second scheduler's drain pays for the first one's
    # cleanup.
    for t in sessions kernels agents; do sql "VACUUM ANALYZE $t" >/dev/null; done
    spid=$(sched_pid)
    local pgp; pgp=$(pg_pids | tr -d ' ' | tr '\n' ',')
    [ -n "${BENCH_PROFILE:-}" ] && sql "SELECT pg_stat_statements_reset()" >/dev/null
    local perf_pid=
    if [ -n "${BENCH_PERF:-}" ]; then
        perf record -q ${BENCH_PERF_ARGS:--a -g -F 499} -o "$BENCH_PERF-$sched.data" >/dev/null 2>&1 & perf_pid=$!
        sleep 1
    fi
    # The wait reads the manager's log (one python process following it) until the rounds
    # logged since the release placed NS sessions: polling the database from the shell cost
    # about a fifth of the machine's CPU during a drain (a psql and a backend per poll).
    # It starts before the release and from the log's size then. It also reads the CPU time
    # of the manager, the scheduler's backend, all of PostgreSQL and the fleet (the kernel's
    # run-time count, schedstat, every thread: utime + stime are sampled at the tick and were
    # off by 10x for short bursts here) at its start and when the last placement is logged
    # (launches start right after the last commit), and writes the four differences, in
    # seconds, as one line to $W/cpu; the release waits until it has read the first ones.
    rm -f "$W/cpu.start"
    "$PY" - "$D/log/manager.log" "$(stat -c %s "$D/log/manager.log")" "$NS" 300 \
        "$MPID" "$spid" "$pgp" "$FLEET_PID" "$W/cpu.start" >"$W/cpu" <<'PYEOF' &
import os, sys, time
path, off, want, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
def cpu(pids):
    t = 0
    for pid in filter(None, pids.split(",")):
        try:
            for task in os.listdir("/proc/%s/task" % pid):
                with open("/proc/%s/task/%s/schedstat" % (pid, task)) as st:
                    t += int(st.read().split()[0])
        except OSError:
            pass
    return t / 1e9
start = [cpu(g) for g in sys.argv[5:9]]
open(sys.argv[9], "w").close()
def report():
    print(" ".join("%.2f" % (cpu(g) - s) for g, s in zip(sys.argv[5:9], start)))
end, placed, buf = time.monotonic() + limit, 0, ""
with open(path) as f:
    f.seek(off)
    while placed < want:
        chunk = f.read()
        if not chunk:
            if time.monotonic() > end:
                report()
                sys.exit(1)
            time.sleep(0.05)
            continue
        buf += chunk
        *lines, buf = buf.split("\n")
        for line in lines:
            if "schedule_round" in line:
                for w in line.split():
                    if w.startswith("placed="):
                        placed += int(w[7:])
report()
PYEOF
    local watch=$!
    until [ -e "$W/cpu.start" ] || ! kill -0 "$watch" 2>/dev/null; do sleep 0.01; done
    # The release: one row, so the clock (its transaction's now()) starts when the queue
    # becomes visible. Latencies are counted from here: greatest(enqueued_at, t0).
    read -r T0_MS t0 <<<"$(sql "UPDATE scaling_groups SET is_active = true WHERE name = 'default'
        RETURNING round(extract(epoch FROM now()) * 1000), now()::text" | tr '|' ' ')"
    [ -n "$T0_MS" ] || { echo "run.sh: $sched: the queue could not be released" >&2; exit 1; }
    T0=$t0
    redis-cli -p "$REDIS_PORT" PUBLISH baic:scheduler-wake wake >/dev/null
    wait "$watch" || echo "run.sh: $sched: $(sql "SELECT count(*) FROM sessions WHERE status = 'PENDING'") sessions still PENDING after 300 s" >&2
    [ -n "$perf_pid" ] && { kill -INT "$perf_pid"; wait "$perf_pid"; }
    read -r CPU_M CPU_S CPU_P CPU_F <"$W/cpu"
    LOAD=$(cut -d' ' -f1 /proc/loadavg)
    NDONE=$(sql "SELECT count(*) FROM sessions WHERE status_history ? 'SCHEDULED' AND name LIKE 'bench-%'")
    # A placement counts when its round commits: the round's schedule_round line, logged once
    # the commit is answered (the rows' SCHEDULED time is their transaction's start). Every
    # session was released at t0, so the rounds give the latencies exactly.
    grep schedule_round "$D/log/manager.log" | tail -n +$(( ROUNDS_SEEN + 1 )) >"$W/rounds-$sched.log"
    read -r RATE P50 P99 DRAIN_S <<<"$("$PY" -c '
import datetime, math, sys
t0 = float(sys.argv[1]) / 1000
rounds = []
for line in open(sys.argv[2]):
    f = dict(w.split("=", 1) for w in line.split() if "=" in w)
    ts = datetime.datetime.strptime(f["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
    rounds.append((ts.replace(tzinfo=datetime.timezone.utc).timestamp() - t0, int(f["placed"])))
rounds = [r for r in sorted(rounds) if r[1] > 0]
n = sum(p for _, p in rounds)
def pct(q):
    k, c = math.ceil(q * n), 0
    for t, p in rounds:
        c += p
        if c >= k:
            return t
if n == 0:
    print("0 nan nan nan")
else:
    end = rounds[-1][0]
    print("%.0f %.0f %.0f %.2f" % (n / max(end, 0.001), 1000 * pct(0.5), 1000 * pct(0.99), end))
' "$T0_MS" "$W/rounds-$sched.log")"
    RUNNING=$(sql "SELECT count(*) FROM sessions WHERE status = 'RUNNING'")
    if [ -n "${BENCH_PROFILE:-}" ]; then
        echo "$sched: PostgreSQL's statements by total time during the drain (ms, calls, rows):" >&2
        "$PSQL" "$DSN" -qAt -F ' | ' -c "SELECT round(total_exec_time::numeric), calls, rows,
            left(regexp_replace(query, '\s+', ' ', 'g'), 100) FROM pg_stat_statements
            ORDER BY total_exec_time DESC LIMIT 12" >&2
    fi
}

# Empties the cluster between schedulers: the fleet forgets its kernels by restarting.
reset_cluster() {
    stop_pid "$FLEET_PID"
    sql "DELETE FROM kernels; DELETE FROM sessions" >/dev/null
    local since; since=$(sql "SELECT now()::text")
    start_fleet
    wait_agents "$since" || exit 1
}

since=$(sql "SELECT now()::text")
start_fleet
wait_agents "$since" || exit 1
FLEET_RSS=$(awk '/^VmRSS/ { print $2 }' "/proc/$FLEET_PID/status")
# API enqueue rate, on the idle cluster before the drains: sequential signed POST /session
# enqueueOnly (each curl + openssl signing process included: a floor for the API, not its
# ceiling). These sessions get scheduled at once and stay out of the drain figures.
. "$D/user.env"
HP=${BACKEND_ENDPOINT#http://}
api_t0=$(now_ms) api_ok=0 api_times=()
for i in $(seq 1 "$API_N"); do
    args=(-s -o /dev/null -w '%{http_code} %{time_total}' -X POST --max-time 10)
    while IFS= read -r h; do args+=(-H "$h"); done < <(sh "$SIGN" POST /session "$HP" "$BACKEND_ACCESS_KEY" "$BACKEND_SECRET_KEY")
    out=$(curl "${args[@]}" --data-binary "{\"image\": \"cr.backend.ai/stable/python:3.11\", \"name\": \"api-$i\", \"enqueueOnly\": true, \"config\": {\"resources\": {\"cpu\": \"1\", \"mem\": \"1g\"}}}" "$BACKEND_ENDPOINT/session")
    code=${out% *}
    api_times+=("${out#* }")
    case $code in 200 | 201 | 202) api_ok=$((api_ok + 1)) ;; *) [ "$api_ok" = 0 ] && echo "run.sh: POST /session: $code" >&2 ;; esac
done
api_ms=$(( $(now_ms) - api_t0 ))
API_RATE=$(awk -v n="$api_ok" -v ms="$api_ms" 'BEGIN { printf "%.1f", n * 1000 / (ms > 0 ? ms : 1) }')
API_P50=$("$PY" -c '
import sys
v = sorted(float(x) for x in sys.argv[1:])
print("%.1f" % (1000 * v[len(v) // 2]) if v else "nan")' "${api_times[@]}")
[ "$api_ok" = "$API_N" ] || echo "run.sh: API enqueue: $api_ok of $API_N accepted" >&2

declare -A R
# drain SCHED: one release and drain (run_sched), then every session RUNNING (the fleet's
# kernel_started), at most 60 s more; enqueue -> RUNNING per session, release -> last RUNNING.
drain() {
    local sched=$1 end
    ROUNDS_SEEN=$(grep -c schedule_round "$D/log/manager.log")
    run_sched "$sched"
    end=$(( $(date +%s) + 60 ))
    until [ "$(sql "SELECT count(*) FROM sessions WHERE status = 'RUNNING' AND name LIKE 'bench-%'")" -ge "$NDONE" ] ||
          [ "$(date +%s)" -ge $end ]; do sleep 0.5; done
    read -r RP50 RP99 RALL NRUN <<<"$(sql "WITH x AS (SELECT (status_history->>'RUNNING')::timestamptz AS t, enqueued_at
          FROM sessions WHERE status_history ? 'RUNNING' AND name LIKE 'bench-%')
        SELECT round(1000 * extract(epoch FROM percentile_disc(0.5) WITHIN GROUP (ORDER BY t - greatest(enqueued_at, '$T0'::timestamptz)))),
          round(1000 * extract(epoch FROM percentile_disc(0.99) WITHIN GROUP (ORDER BY t - greatest(enqueued_at, '$T0'::timestamptz)))),
          round(extract(epoch FROM max(t) - '$T0'::timestamptz)::numeric, 2), count(*) FROM x" | tr '|' ' ')"
}

# A warm-up drain first (BENCH_WARMUP sessions under fifo, default as many as a measured
# drain; 0 = none), reported but not in the figures: the first drain after `baic up` ran
# 30-35% slower than a later one whichever scheduler it was, and one after a smaller warm-up
# (2,500) still 15-25% slower. What differs is the tables' history: the first queue this deep
# extends the session and kernel tables and splits their index pages, where a system in
# service reuses the space its earlier sessions left (vacuumed).
WARM_N=${BENCH_WARMUP:-$NS} WARM=
if [ "$WARM_N" -gt 0 ]; then
    NS_MEASURED=$NS NS=$WARM_N
    drain fifo
    WARM="fifo, $WARM_N sessions: $RATE placements/s, every session RUNNING after $RALL s"
    NS=$NS_MEASURED
    reset_cluster
fi
first=1
for sched in $SCHEDS; do
    [ -n "$first" ] || reset_cluster
    first=
    drain "$sched"
    R[$sched.rate]=$RATE R[$sched.p50]=$P50 R[$sched.p99]=$P99 R[$sched.drain]=$DRAIN_S
    R[$sched.n]=$NDONE R[$sched.cpu]="$CPU_M $CPU_S $CPU_P $CPU_F $LOAD"
    R[$sched.running]=$NRUN R[$sched.run]="$RP50 $RP99 $RALL"
done
MGR_HWM=$(awk '/^VmHWM/ { print $2 }' "/proc/$MPID/status")
MGR_RSS=$(awk '/^VmRSS/ { print $2 }' "/proc/$MPID/status")

# ---------------------------------------------------------------- Slurm
SL_SEQ=nan SL_PAR=nan SL_P50=nan SL_P99=nan
run_slurm() {
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq slurm-wlm munge >"$W/apt.log" 2>&1 ||
            { echo "run.sh: could not install slurm-wlm munge (see $W/apt.log)" >&2; return 1; }
    fi
    [ "$(id -u)" = 0 ] || { echo "run.sh: Slurm peer needs root" >&2; return 1; }
    local S=$W/slurm p1 p2
    mkdir -p "$S/state" "$S/spool" "$S/munge" "$S/out"
    chown munge: "$S/munge" 2>/dev/null; chmod 755 "$S/munge" # munged wants o+x on its socket dir
    [ -s /etc/munge/munge.key ] || { mkdir -p /etc/munge; dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
    chown munge: /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge; chown munge: /run/munge
    runuser -u munge -- munged -F --socket="$S/munge/munge.socket" --pid-file="$S/munge/munged.pid" \
        --log-file="$S/munge/munged.log" --seed-file="$S/munge/seed" >/dev/null 2>&1 &
    MUNGE_PID=$!
    p1=$(( (RANDOM % 12000) + 20000 )); p2=$((p1 + 1))
    cat >"$S/slurm.conf" <<EOF
ClusterName=baicbench
SlurmctldHost=localhost
SlurmctldPort=$p1
SlurmdPort=$p2
AuthType=auth/munge
AuthInfo=socket=$S/munge/munge.socket
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
SchedulerParameters=batch_sched_delay=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MaxJobCount=20000
ReturnToService=2
NodeName=localhost CPUs=2 RealMemory=20000 State=UNKNOWN
PartitionName=bench Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF=$S/slurm.conf
    sleep 0.5
    slurmctld -D -f "$S/slurm.conf" >"$S/slurmctld.log" 2>&1 &
    CTLD_PID=$!
    slurmd -D -N localhost -f "$S/slurm.conf" >"$S/slurmd.log" 2>&1 &
    SLURMD_PID=$!
    local end=$(( $(date +%s) + 60 ))
    until sinfo -h -o '%t' 2>/dev/null | grep -qx idle; do
        [ "$(date +%s)" -ge $end ] && { echo "run.sh: slurm did not come up (see $S/*.log)" >&2; sinfo >&2; return 1; }
        sleep 0.5
    done
    # submit -> start, one job at a time on an idle node (the job stamps its start).
    local lat=() i t0 f
    for i in $(seq 1 20); do
        f=$S/out/start.$i
        t0=$(date +%s%N)
        sbatch -Q -o /dev/null --wrap="date +%s%N > $f" >/dev/null || return 1
        end=$(( $(date +%s) + 30 ))
        until [ -s "$f" ]; do [ "$(date +%s)" -ge $end ] && { echo "run.sh: slurm job $i did not start" >&2; return 1; }; sleep 0.01; done
        lat+=("$(awk -v a="$t0" -v b="$(cat "$f")" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')")
    done
    read -r SL_P50 SL_P99 <<<"$("$PY" -c '
import math, sys
v = sorted(float(x) for x in sys.argv[1:])
q = lambda p: v[max(0, math.ceil(p * len(v)) - 1)]
print("%.0f %.0f" % (q(0.5), q(0.99)))' "${lat[@]}")"
    # submissions/s: sequential, then 4 parallel submitters.
    t0=$(now_ms)
    for i in $(seq 1 "$SLURM_N"); do sbatch -Q -o /dev/null --wrap=true >/dev/null || return 1; done
    SL_SEQ=$(awk -v n="$SLURM_N" -v ms="$(( $(now_ms) - t0 ))" 'BEGIN { printf "%.0f", n * 1000 / ms }')
    t0=$(now_ms)
    for p in 1 2 3 4; do
        ( for i in $(seq 1 $((SLURM_N / 4))); do sbatch -Q -o /dev/null --wrap=true >/dev/null; done ) &
    done
    wait $(jobs -p | grep -v -e "^$CTLD_PID\$" -e "^$SLURMD_PID\$" -e "^$MUNGE_PID\$" -e "^$FLEET_PID\$") 2>/dev/null
    SL_PAR=$(awk -v n="$((SLURM_N / 4 * 4))" -v ms="$(( $(now_ms) - t0 ))" 'BEGIN { printf "%.0f", n * 1000 / ms }')
    SL_CTLD_RSS=$(awk '/^VmHWM/ { print $2 }' "/proc/$CTLD_PID/status")
    scancel -u root >/dev/null 2>&1
    return 0
}
SL_CTLD_RSS=nan
if [ -z "${BENCH_NO_SLURM:-}" ]; then
    stop_pid "$FLEET_PID"; FLEET_PID= # give Slurm the machine as idle as baic had it
    run_slurm || echo "run.sh: Slurm peer not measured" >&2
fi

# ---------------------------------------------------------------- report
echo "scheduler bench: $NA agents (baic-agent-fleet, one process; fleet RSS ${FLEET_RSS} KiB), $NS sessions"
echo "  released at once, mixed sizes (cpu 1/2/4, mem 1-8 GiB), 8 keypairs, $(nproc) cores,"
echo "  PostgreSQL synchronous_commit=off; enqueue by SQL (rows as POST /session enqueueOnly writes)"
printf '%-6s %14s %10s %10s %10s %10s %10s %12s %12s %13s\n' sched placements_s p50_ms p99_ms drain_s \
    scheduled running run_p50_ms run_p99_ms all_running_s
for sched in $SCHEDS; do
    read -r rp50 rp99 rall <<<"${R[$sched.run]}"
    printf '%-6s %14s %10s %10s %10s %10s %10s %12s %12s %13s\n' "$sched" "${R[$sched.rate]}" "${R[$sched.p50]}" \
        "${R[$sched.p99]}" "${R[$sched.drain]}" "${R[$sched.n]}" "${R[$sched.running]}" "$rp50" "$rp99" "$rall"
done
echo "(p50/p99: enqueue -> SCHEDULED; run_p50/run_p99: enqueue -> RUNNING; all_running_s: release -> last RUNNING)"
[ -n "$WARM" ] && echo "warm-up drain before them (not in the figures): $WARM"
echo "CPU seconds during each drain (manager, its scheduler's PostgreSQL backend, all PostgreSQL, fleet; load average after):"
for sched in $SCHEDS; do
    read -r cm cs cp cf ld <<<"${R[$sched.cpu]}"
    echo "  $sched: manager $cm s, scheduler backend $cs s, postgres $cp s, fleet $cf s; loadavg $ld;" \
         "rounds $(wc -l <"$W/rounds-$sched.log"), mean decide $(awk -F'decide_ms=' '{ split($2, a, " "); s += a[1]; n++ } END { printf "%.0f", n ? s / n : 0 }' "$W/rounds-$sched.log") ms"
done
echo "manager RSS: peak (VmHWM) $MGR_HWM KiB, now $MGR_RSS KiB (target <= 204800)"
echo "API enqueue (POST /session enqueueOnly, sequential signed curl): $API_RATE/s over $API_N (client-bound: sh + openssl + curl per call); request p50 as curl saw it $API_P50 ms"
echo "slurm: sbatch --wrap=true sequential $SL_SEQ/s, 4 parallel $SL_PAR/s; submit->start (idle, 1 at a time)" \
     "p50 $SL_P50 ms p99 $SL_P99 ms; slurmctld peak RSS $SL_CTLD_RSS KiB"
line=
for sched in $SCHEDS; do
    line="$line ${sched}_placements_per_s=${R[$sched.rate]} ${sched}_p50_ms=${R[$sched.p50]} ${sched}_p99_ms=${R[$sched.p99]}"
    line="$line ${sched}_loadavg=$(echo "${R[$sched.cpu]}" | cut -d' ' -f5)"
    read -r rp50 rp99 rall <<<"${R[$sched.run]}"
    line="$line ${sched}_running_p99_ms=$rp99 ${sched}_all_running_s=$rall"
done
first_rate=${R[${SCHEDS%% *}.rate]}
ratio=$(awk -v a="$first_rate" -v b="$SL_SEQ" 'BEGIN { if (b + 0 > 0) printf "%.1f", a / b; else print "nan" }')
echo "${line# } manager_peak_rss_kib=$MGR_HWM api_enqueue_per_s=$API_RATE api_enqueue_p50_ms=$API_P50 slurm_submits_per_s=$SL_SEQ slurm_parallel_submits_per_s=$SL_PAR slurm_submit_start_p50_ms=$SL_P50 slurm_submit_start_p99_ms=$SL_P99 ratio=$ratio"
