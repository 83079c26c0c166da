#!/bin/bash
# prune_kill.sh - kill -9 during prune at several points; every time, `check`
# passes and every kept snapshot restores bit-exact, and a later prune
# finishes the job.
#
# The repository: 12 backups, each adding a file kept from then on and a
# scratch file deleted before the next run, so after `forget --keep-last 4`
# eight data packs are partly used (repacked with --max-unused 0%), eight
# tree packs and some blobs are unused.  Prune is started on a fresh copy of
# that repository and SIGKILLed at fixed times and the moment each stage is
# seen on disk: the first new pack, the new index, the first old index file
# gone, the first and the eighth old pack gone (the state found after each
# kill is printed: index files and packs, how many of them new).
. "$(dirname "$0")/lib.sh"
e2e_setup

P=$T/pristine
D=$T/src
mkdir -p "$D"
init_repo "$P" --chunk-size 64,128,512
for i in $(seq -w 1 12); do
	randfile "$D/keep.$i" $((512 << 10))
	rm -f "$D"/scratch.*
	randfile "$D/scratch.$i" $((512 << 10))
	cof -r "$P" backup -q "$D" --time "2024-02-$i 12:00:00"
	if [ "$i" -ge 9 ]; then
		rm -rf "$T/copy.$i"
		cp -a "$D" "$T/copy.$i"
	fi
done
cof -r "$P" forget -q --keep-last 4
"$COFFER" -r "$P" --json snapshots > "$T/s.json" || fail "snapshots"
assert_eq 4 "$(json_field "$T/s.json" 'len(j)')" "snapshots kept"

count() { find "$1" -type f ! -name '.*' | wc -l; }
p_idx=$(count "$P/index")
p_packs=$(count "$P/data")

# how long a whole prune takes here (for the report)
cp -a "$P" "$T/full"
t0=$(date +%s%N)
cof -r "$T/full" prune --max-unused 0%
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
f_idx=$(count "$T/full/index")
f_packs=$(count "$T/full/data")
note "a whole prune takes $ms ms: index files $p_idx -> $f_idx, packs $p_packs -> $f_packs"

verify() # REPO WHAT: check passes and the four kept snapshots restore identical
{
	local repo=$1 what=$2 i id
	if ! "$COFFER" -r "$repo" check --read-data > "$T/c.out" 2> "$T/c.err"; then
		sed 's/^/    /' "$T/c.out" "$T/c.err" >&2
		soft_fail "$what: check fails"
		return
	fi
	for i in 09 10 11 12; do
		id=$(json_field "$T/s.json" "[s['id'] for s in j if s['time'].startswith('2024-02-$i')][0]")
		rm -rf "$T/r"
		if ! "$COFFER" -r "$repo" restore "$id" --target "$T/r" > "$T/r.out" 2> "$T/r.err"; then
			sed 's/^/    /' "$T/r.err" >&2
			soft_fail "$what: snapshot of 2024-02-$i does not restore"
			continue
		fi
		compare_trees "$T/copy.$i" "$T/r$D" > /dev/null
	done
}

# kill_at REPO EVENT: run prune on REPO and SIGKILL it the moment EVENT is
# seen (python polls the directories in a tight loop, ~0.1 ms a round):
#   time:SECONDS   after that long
#   newpack        a pack appeared that was not there before (repacking)
#   newindex       the new index file appeared
#   oldindex       an old index file is gone
#   packgone:N     N of the old packs are gone
# Prints what it found after the kill: "<index files> idx, <packs> packs".
kill_at()
{
	"$PY" - "$COFFER" "$1" "$2" <<'PYEOF'
import os, signal, subprocess, sys, time
coffer, repo, event = sys.argv[1:4]
def names(d):
    out = set()
    for root, _, files in os.walk(os.path.join(repo, d)):
        out.update(f for f in files if not f.startswith("."))
    return out
idx0, data0 = names("index"), names("data")
p = subprocess.Popen([coffer, "-r", repo, "prune", "--max-unused", "0%"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
kind, _, arg = event.partition(":")
def seen():
    if kind == "newpack": return bool(names("data") - data0)
    if kind == "newindex": return bool(names("index") - idx0)
    if kind == "oldindex": return bool(idx0 - names("index"))
    if kind == "packgone": return len(data0 - names("data")) >= int(arg)
    return False
status = None
if kind == "time":
    time.sleep(float(arg))
    os.kill(p.pid, signal.SIGKILL)
else:
    # run prune in slices of ~0.3 ms, stopped (SIGSTOP) while the disk is
    # looked at, so the kill lands exactly in the state that was seen
    while True:
        time.sleep(0.0003)
        os.kill(p.pid, signal.SIGSTOP)
        _, st = os.waitpid(p.pid, os.WUNTRACED)
        if not os.WIFSTOPPED(st):
            status = st
            break
        if seen():
            os.kill(p.pid, signal.SIGKILL)
            os.kill(p.pid, signal.SIGCONT)
            break
        os.kill(p.pid, signal.SIGCONT)
if status is None:
    _, status = os.waitpid(p.pid, 0)
p.returncode = 0
killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
i, d = names("index"), names("data")
print("%s: %s%d idx (%d new), %d packs (%d new)" % (event, "" if killed else "finished, ",
      len(i), len(i - idx0), len(d), len(d - data0)))
PYEOF
}

states=""
for ev in time:0 newpack newindex oldindex packgone:1 packgone:5; do
	rm -rf "$T/k"
	cp -a "$P" "$T/k"
	st=$(kill_at "$T/k" "$ev")
	note "$st"
	states="$states [$st]"
	verify "$T/k" "killed at $ev"
	# the next prune completes the job
	expect_exit 0 "$COFFER" -r "$T/k" unlock
	expect_exit 0 "$COFFER" -r "$T/k" prune --max-unused 0%
	check_eq "$f_idx:$f_packs" "$(count "$T/k/index"):$(count "$T/k/data")" \
		"index files:packs after a prune that follows one killed at $ev"
done
verify "$T/k" "after the final prune"
e2e_done
