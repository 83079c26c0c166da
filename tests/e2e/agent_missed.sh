#!/bin/bash
# agent_missed.sh - the agent's loop under a fake clock (libfaketime, running
# ten times faster than real time, so no test waits a real minute):
#   COFFER_JITTER  each job starts after its tick by a delay of at most the
#                  jitter (the announced start is tick..tick+jitter and the job
#                  starts then), and still once per tick;
#   missed ticks   ticks that passed while the agent was down are not run at
#                  start by default; with COFFER_RUN_MISSED=1 one job (not one
#                  per missed tick) runs at start for the latest of them, and a
#                  restart right after it runs nothing more; an agent that has
#                  never run a tick has nothing to make up.
# Skipped (77) without libfaketime.
. "$(dirname "$0")/lib.sh"
e2e_setup

command -v faketime > /dev/null || skip "faketime is not installed (apt-get install faketime)"
LIBFT=$(dpkg -L libfaketime 2> /dev/null | grep '/libfaketime.so.1$' | head -n 1)
[ -n "$LIBFT" ] || skip "libfaketime.so.1 not found"

R=$T/repo
init_repo "$R"
mkdir -p "$T/backup/vol"
echo data > "$T/backup/vol/file"
# two ticks a minute apart, every day
SCHEDULE="4,5 5 * * *"
AENV=(PATH="$PATH" HOME="$T" TZ=UTC COFFER_TEST_PRUNE_MARGIN_SECONDS=0 COFFER_REPOSITORY="$R" COFFER_PASSWORD_FILE="$PWFILE"
      COFFER_BACKUP_ROOT="$T/backup" COFFER_STATE_DIR="$T/state" COFFER_DOCKER_HOST=none
      COFFER_SCHEDULE="$SCHEDULE" COFFER_VERBOSE=1)
snapshots() { "$COFFER" -r "$R" --json snapshots | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
unix() { date -u -d "$1" +%s; }
# log timestamps ("2026-01-01 05:04:13 UTC", "start=2026-01-01T05:04:13Z") as unix times
unix_list() { while read -r t; do unix "$t"; done; }

# agent_at NAME 'YYYY-MM-DD HH:MM:SS' [VAR=VALUE...]: start the loop with the
# fake clock set there (libfaketime preloaded directly, so that $! is the
# agent and SIGTERM reaches it); its stderr goes to $T/NAME.err.
agent_at()
{
	local name=$1 when=$2
	shift 2
	env -i "${AENV[@]}" "$@" LD_PRELOAD="$LIBFT" ASAN_OPTIONS=verify_asan_link_order=0 \
		FAKETIME="@$when x10" FAKETIME_DONT_RESET=1 FAKETIME_NO_CACHE=1 \
		"$COFFER" agent > "$T/$name.out" 2> "$T/$name.err" &
	PID=$!
	E2E_PIDS+=($PID)
}
stop_agent()
{
	kill -TERM "$PID"
	wait "$PID"
	check_eq 0 "$?" "$1: exit after SIGTERM between jobs"
}
# waiting_for NAME 'YYYY-MM-DD HH:MM': the agent announced a job at that minute
waiting_for() { grep -q "next job at $2:[0-9][0-9] UTC" "$T/$1.err" 2> /dev/null; }
jobs_in() { grep -c ' result=' "$T/$1.err"; }

# --- COFFER_JITTER: at most the jitter after each tick, once per tick -------
J=20
agent_at jitter '2026-01-01 05:03:57' COFFER_JITTER=${J}s
two_jobs() { [ "$(jobs_in jitter)" -ge 2 ] && waiting_for jitter '2026-01-02 05:04'; }
wait_for two_jobs || { cat "$T/jitter.err" >&2; fail "two jittered jobs did not run within 20 s"; }
stop_agent jitter
check_eq 2 "$(jobs_in jitter)" "jobs for two ticks with jitter"
check_eq 2 "$(snapshots)" "snapshots after two jittered ticks"
mapfile -t FIRE < <(grep -o 'next job at [-0-9]* [:0-9]*' "$T/jitter.err" | cut -d' ' -f4,5 | unix_list)
mapfile -t START < <(grep -o ' start=[^ ]*' "$T/jitter.err" | cut -d= -f2 | unix_list)
TICKS=("$(unix '2026-01-01 05:04:00')" "$(unix '2026-01-01 05:05:00')")
for i in 0 1; do
	tick=${TICKS[$i]} fire=${FIRE[$i]:-0} start=${START[$i]:-0}
	note "tick $(date -u -d "@$tick" +%T): announced +$((fire - tick)) s, started +$((start - tick)) s (jitter ${J} s)"
	[ "$fire" -ge "$tick" ] && [ "$fire" -le $((tick + J)) ] ||
		soft_fail "tick $i: announced start $fire is not within the jitter after the tick $tick"
	# started when announced (the fake clock runs 10x: allow 5 fake seconds,
	# half a real one, to wake: under ASan beside the rest of the suite a
	# wake-up once took 0.3 s)
	[ "$start" -ge "$fire" ] && [ "$start" -le $((fire + 5)) ] ||
		soft_fail "tick $i: the job started at $start, announced for $fire"
done
check_eq "${TICKS[1]}" "$(json_field "$T/state/state.json" 'j["last_job"]["tick_unix"]')" "last tick run"

# --- a missed tick is not run at start by default --------------------------
# down from Jan 1 05:05 to Jan 4 12:00: six ticks missed
agent_at default '2026-01-04 12:00:00'
wait_for waiting_for default '2026-01-05 05:04' || { cat "$T/default.err" >&2; fail "the agent did not start waiting"; }
stop_agent default
check_eq 0 "$(jobs_in default)" "jobs at start without COFFER_RUN_MISSED"
check_eq 2 "$(snapshots)" "snapshots after a start without COFFER_RUN_MISSED"

# --- COFFER_RUN_MISSED=1: one job at start, for the latest missed tick -------
agent_at missed '2026-01-04 12:00:00' COFFER_RUN_MISSED=1
wait_for waiting_for missed '2026-01-05 05:04' || { cat "$T/missed.err" >&2; fail "the agent did not start waiting"; }
stop_agent missed
check_eq 1 "$(jobs_in missed)" "jobs at start with COFFER_RUN_MISSED=1 (six ticks missed)"
grep -qF "6 tick(s) of the schedule passed while the agent was down" "$T/missed.err" ||
	soft_fail "the log does not say how many ticks were missed"
assert_contains "$T/missed.err" "result=success" "the made-up job"
check_eq 3 "$(snapshots)" "snapshots after the made-up job"
check_eq "$(unix '2026-01-04 05:05:00')" "$(json_field "$T/state/state.json" 'j["last_job"]["tick_unix"]')" \
	"the made-up job stands for the latest missed tick"

# --- restarted right after: the missed ticks are made up already -----------
agent_at again '2026-01-04 12:30:00' COFFER_RUN_MISSED=1
wait_for waiting_for again '2026-01-05 05:04' || { cat "$T/again.err" >&2; fail "the agent did not start waiting"; }
stop_agent again
check_eq 0 "$(jobs_in again)" "jobs at a restart after the made-up job"
check_eq 3 "$(snapshots)" "snapshots after a restart"

# --- an agent that never ran a tick has nothing to make up -----------------
AENV+=(COFFER_STATE_DIR="$T/state-new")
agent_at fresh '2026-01-04 12:00:00' COFFER_RUN_MISSED=1
wait_for waiting_for fresh '2026-01-05 05:04' || { cat "$T/fresh.err" >&2; fail "the agent did not start waiting"; }
stop_agent fresh
check_eq 0 "$(jobs_in fresh)" "jobs at the first start with COFFER_RUN_MISSED=1"
check_eq 3 "$(snapshots)" "snapshots after the first start of a new agent"

e2e_done
