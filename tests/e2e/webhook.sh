#!/bin/bash
# webhook.sh - the Standard Webhook's delivery against loopback receivers
# (tests/infra/receiver.py).  A secret shorter than the specification's 24
# bytes is refused at start (one line, exit 1, the secret not echoed).  Two
# secrets (a rotation): the one webhook-signature header carries a valid
# signature for each.  The payload's data names the host.  A receiver
# answering 503 with Retry-After: 2 twice, then 200: three attempts, each
# retry at least 2 s after the one before (the backoff base is 0.1 s, so
# only Retry-After explains the wait), one delivery, the same webhook-id.
# A receiver that always answers 503 without Retry-After, with backoff 0.2
# s and COFFER_WEBHOOK_RETRY_FOR=1: attempts at 0, 0.2 and 0.6 s, the next
# (1.4 s) would start past the bound, so exactly 3, "gave up after 3
# attempts" logged, the job still exit 0 and the failure counted in
# coffer_notify_failures_total{kind="webhook"}.
. "$(dirname "$0")/lib.sh"
e2e_setup
RECEIVER=${COFFER_SOURCE_DIR:-$(dirname "$0")/../..}/tests/infra/receiver.py

R=$T/repo
init_repo "$R"
mkdir -p "$T/backup/app" "$T/state"
echo data > "$T/backup/app/file"
AENV=(PATH="$PATH" HOME="$T" TZ=UTC COFFER_REPOSITORY="$R" COFFER_PASSWORD_FILE="$PWFILE"
      COFFER_BACKUP_ROOT="$T/backup" COFFER_STATE_DIR="$T/state" COFFER_DOCKER_HOST=none COFFER_HOST=hook-host)
agent_env() { env -i "${AENV[@]}" "$@"; }
S1=whsec_$(head -c 32 /dev/urandom | base64 -w0)
S2=whsec_$(head -c 24 /dev/urandom | base64 -w0)
SHORT=whsec_$(head -c 16 /dev/urandom | base64 -w0)

# --- a 16-byte secret is refused ---------------------------------------------
expect_exit 1 agent_env COFFER_WEBHOOK_URL=http://127.0.0.1:9/ COFFER_WEBHOOK_SECRET="$SHORT" "$COFFER" agent --once
assert_one_line_err "a short webhook secret"
assert_contains "$T/err" "COFFER_WEBHOOK_SECRET: secret 1 is 16 bytes; Standard Webhooks secrets are 24 to 64" \
	"the refusal says why"
assert_not_contains "$T/err" "${SHORT#whsec_}" "the refused secret is not echoed"

# --- two secrets; Retry-After honoured -----------------------------------------
"$PY" "$RECEIVER" "$T/a.jsonl" --fail /hook:2:2 --secret "$S1" --secret "$S2" > "$T/port-a" &
E2E_PIDS+=($!)
wait_for test -s "$T/port-a" || fail "the receiver did not start"
expect_exit 0 agent_env COFFER_WEBHOOK_URL="http://127.0.0.1:$(cat "$T/port-a")/hook" \
	COFFER_WEBHOOK_SECRET="$S1 $S2" COFFER_WEBHOOK_BACKOFF=0.1 COFFER_VERBOSE=1 "$COFFER" agent --once
"$PY" - "$T/a.jsonl" <<'PYEOF' || soft_fail "the retried, rotated webhook (see above)"
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert [x["status"] for x in r] == [503, 503, 200], [x["status"] for x in r]
gaps = [b["t"] - a["t"] for a, b in zip(r, r[1:])]
assert all(g >= 2.0 for g in gaps), "retries came sooner than Retry-After: 2 asked: %r" % gaps
assert len({x["headers"]["webhook-id"] for x in r}) == 1, "webhook-id changed between retries"
last = r[-1]
assert last["valid"] == [True, True], "a signature per secret: %r" % last["valid"]
assert len(last["headers"]["webhook-signature"].split(" ")) == 2, last["headers"]["webhook-signature"]
body = json.loads(last["body"])
assert body["type"] == "coffer.job.succeeded", body["type"]
assert body["data"]["host"] == "hook-host", body["data"].get("host")
PYEOF
assert_contains "$T/err" "(Retry-After)" "the log says the wait is the receiver's"

# --- the time bound ------------------------------------------------------------
"$PY" "$RECEIVER" "$T/b.jsonl" --fail /hook:-1 > "$T/port-b" &
E2E_PIDS+=($!)
wait_for test -s "$T/port-b" || fail "the receiver did not start"
expect_exit 0 agent_env COFFER_WEBHOOK_URL="http://127.0.0.1:$(cat "$T/port-b")/hook" COFFER_WEBHOOK_BACKOFF=0.2 \
	COFFER_WEBHOOK_RETRY_FOR=1 COFFER_METRICS_FILE="$T/coffer.prom" "$COFFER" agent --once
check_eq 3 "$(wc -l < "$T/b.jsonl")" "attempts within COFFER_WEBHOOK_RETRY_FOR=1 with backoff 0.2 s (0, 0.2, 0.6 s)"
assert_contains "$T/err" "gave up after 3 attempts" "the log says it gave up"
grep -q '^coffer_notify_failures_total{kind="webhook"} 1$' "$T/coffer.prom" ||
	soft_fail "the failed webhook is not counted: $(grep notify_failures "$T/coffer.prom")"
e2e_done
