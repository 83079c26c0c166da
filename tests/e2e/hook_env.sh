#!/bin/bash
# hook_env.sh - COFFER_PRE_COMMAND / COFFER_POST_COMMAND run without the
# agent's secrets: the hooks dump their whole environment, and none of the
# secret VALUES (repository password from COFFER_PASSWORD and from the
# password file, S3 secret key and session token from the environment and
# from COFFER_CONFIG_FILE, the webhook secret, a password inside a URL, a
# MariaDB password) appears anywhere in the dump.  The post hook is told the
# job's outcome: COFFER_JOB_STATUS=success and COFFER_SNAPSHOT_ID = the id of
# the snapshot just written; after a failed job COFFER_JOB_STATUS=failed and
# no COFFER_SNAPSHOT_ID.  Ordinary variables (PATH, HOME, COFFER_REPOSITORY,
# one of the user's own) still reach the hooks.
. "$(dirname "$0")/lib.sh"
e2e_setup

R=$T/repo
init_repo "$R"
mkdir -p "$T/backup/app" "$T/state"
echo data > "$T/backup/app/file"
PASSWORD=$(head -n 1 "$PWFILE")

# Distinct, greppable secret values (none is a substring of a path here).
S_AWS=awsSecretValue7Qx93Kd
S_TOKEN=awsSessionTokenZp4Lw
S_FILEAWS=cfgFileSecretR8m2Vb
S_WEBHOOK=whsec_$(printf 'webhookSecretBytes01234567' | base64 -w0)
S_URLPW=urlPassWordN5t6
S_MARIA=mariadbPassWordK9j
S_PLAIN=plainPasswordGh3Ty
S_NOTIFY=notifyPingUuidW2c8
cat > "$T/agent.conf" <<EOF
AWS_SECRET_ACCESS_KEY=$S_FILEAWS
COFFER_KEEP_LAST=10
EOF
# The webhook goes nowhere (port 9, no retries): only its secret matters.
AENV=(PATH="$PATH" HOME="$T" TZ=UTC COFFER_TEST_PRUNE_MARGIN_SECONDS=0 COFFER_REPOSITORY="$R"
      COFFER_BACKUP_ROOT="$T/backup" COFFER_STATE_DIR="$T/state" COFFER_DOCKER_HOST=none
      COFFER_WEBHOOK_URL=http://127.0.0.1:9/hook COFFER_WEBHOOK_SECRET="$S_WEBHOOK" COFFER_WEBHOOK_RETRIES=0
      AWS_SESSION_TOKEN="$S_TOKEN" AWS_ACCESS_KEY_ID=AKIDEXAMPLE MARIADB_PASSWORD="$S_MARIA"
      APP_DATABASE_URL="postgres://app:$S_URLPW@db.example/app" APP_PW="$PASSWORD"
      COFFER_NOTIFY_URLS="kuma+http://127.0.0.1:9/api/push/$S_NOTIFY" USER_SETTING=visible-to-hooks)
HOOKS=(COFFER_PRE_COMMAND="env > $T/pre.env" COFFER_POST_COMMAND="env > $T/post.env")

# no_secrets FILE WHAT: none of the secret values occurs in FILE
no_secrets()
{
	local s
	[ -s "$1" ] || { soft_fail "$2: the hook did not run (no $1)"; return; }
	for s in "$PASSWORD" "$S_AWS" "$S_TOKEN" "$S_FILEAWS" "${S_WEBHOOK#whsec_}" "$S_URLPW" "$S_MARIA" "$S_PLAIN" "$S_NOTIFY"; do
		if grep -qF -- "$s" "$1"; then
			soft_fail "$2: secret value '$s' reached the hook: $(grep -F -- "$s" "$1" | cut -c1-80 | tr '\n' ' ')"
		fi
	done
}

# has_line FILE LINE WHAT
has_line()
{
	grep -qxF -- "$2" "$1" || soft_fail "$3: '$2' not in the hook's environment"
}

# --- 1: password file, the S3 secret key from the config file -----------
expect_exit 0 env -i "${AENV[@]}" "${HOOKS[@]}" COFFER_PASSWORD_FILE="$PWFILE" APP_LOGIN="$PASSWORD" \
	COFFER_CONFIG_FILE="$T/agent.conf" "$COFFER" agent --once
# The secret from the config file is exported to the agent's own environment
# (for the S3 backend); APP_LOGIN holds the password under a harmless name
# (matched by its value, which the agent read from the password file).
no_secrets "$T/pre.env" "pre hook (password file)"
no_secrets "$T/post.env" "post hook (password file)"
SNAP=$(latest_id "$R")
has_line "$T/post.env" "COFFER_JOB_STATUS=success" "post hook after a good job"
has_line "$T/post.env" "COFFER_SNAPSHOT_ID=$SNAP" "post hook names the snapshot"
grep -q '^COFFER_JOB_STATUS=' "$T/pre.env" && soft_fail "the pre hook is given a job status"
grep -q '^COFFER_SNAPSHOT_ID=' "$T/pre.env" && soft_fail "the pre hook is given a snapshot id"
for f in pre post; do
	has_line "$T/$f.env" "PATH=$PATH" "$f hook"
	has_line "$T/$f.env" "HOME=$T" "$f hook"
	has_line "$T/$f.env" "COFFER_REPOSITORY=$R" "$f hook"
	has_line "$T/$f.env" "USER_SETTING=visible-to-hooks" "$f hook"
	has_line "$T/$f.env" "COFFER_BACKUP_ROOT=$T/backup" "$f hook"
done
# names are gone too, not just values
for n in COFFER_PASSWORD_FILE COFFER_WEBHOOK_SECRET AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN \
	AWS_ACCESS_KEY_ID MARIADB_PASSWORD APP_DATABASE_URL APP_PW COFFER_CONFIG_FILE_SECRET COFFER_NOTIFY_URLS; do
	grep -q "^$n=" "$T/post.env" && soft_fail "$n reached the post hook"
done

# --- 2: the password in COFFER_PASSWORD; a stale status in the environment --
rm -f "$T/pre.env" "$T/post.env"
expect_exit 0 env -i "${AENV[@]}" "${HOOKS[@]}" COFFER_PASSWORD="$PASSWORD" APP_LOGIN="$PASSWORD" \
	AWS_SECRET_ACCESS_KEY="$S_AWS" COFFER_JOB_STATUS=stale "$COFFER" agent --once
no_secrets "$T/pre.env" "pre hook (COFFER_PASSWORD)"
no_secrets "$T/post.env" "post hook (COFFER_PASSWORD)"
SNAP2=$(latest_id "$R")
[ "$SNAP2" != "$SNAP" ] || soft_fail "the second job wrote no new snapshot"
has_line "$T/post.env" "COFFER_JOB_STATUS=success" "post hook (second job)"
has_line "$T/post.env" "COFFER_SNAPSHOT_ID=$SNAP2" "post hook names the second snapshot"
check_eq 1 "$(grep -c '^COFFER_JOB_STATUS=' "$T/post.env")" "COFFER_JOB_STATUS lines in the post hook"
grep -q '^COFFER_JOB_STATUS=stale' "$T/pre.env" && soft_fail "an inherited COFFER_JOB_STATUS reached the pre hook"

# --- 3: a failed job (wrong password): status failed, no snapshot id -------
rm -f "$T/pre.env" "$T/post.env"
expect_exit 12 env -i "${AENV[@]}" "${HOOKS[@]}" COFFER_PASSWORD="$S_PLAIN" "$COFFER" agent --once
no_secrets "$T/post.env" "post hook (failed job)"
has_line "$T/post.env" "COFFER_JOB_STATUS=failed" "post hook after a failed job"
grep -q '^COFFER_SNAPSHOT_ID=' "$T/post.env" && soft_fail "a failed job gives the post hook a snapshot id"

e2e_done
