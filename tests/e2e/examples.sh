#!/bin/bash
# examples.sh - every coffer command line and every agent setting in
# examples/ is valid for the built binary: the command lines are taken out of
# the compose file (each coffer service's entrypoint + command, with the
# Dockerfile's ENTRYPOINT/CMD as defaults, and the `docker compose run/exec`
# lines of its header), the Kubernetes CronJob (command/args of coffer
# containers), the systemd units (ExecStart) and the shell scripts, and each is
# run under COFFER_PARSE_ONLY=1, which makes the CLI validate options and
# arguments (and the agent its whole configuration) and exit 0 before opening
# a repository.  Each container's environment (the Dockerfile's ENV, env_file,
# environment; k8s env; systemd Environment/EnvironmentFile) is given to the
# command, and also checked on its own with `agent --print-config`, which in
# this mode refuses unknown COFFER_* keys and bad values.  A copy of the
# examples with a misspelt option, an unknown key and a bad value in each kind
# of file must be refused, naming each mistake.
. "$(dirname "$0")/lib.sh"
e2e_setup

SRC=${COFFER_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
EX=$SRC/examples
[ -d "$EX" ] || fail "no examples directory at $EX"

# --- the parse-only mode itself -------------------------------------------
PO=(env -i PATH="$PATH" COFFER_PARSE_ONLY=1)
expect_exit 0 "${PO[@]}" "$COFFER" restore latest --target /nonexistent/dir --include /backup/app-data
assert_contains "$T/err" "the command line is valid" "parse-only verdict"
expect_exit 1 "${PO[@]}" "$COFFER" restore latest --taget /srv
assert_contains "$T/err" "unknown option --taget" "a misspelt option"
expect_exit 1 "${PO[@]}" "$COFFER" restore latest
assert_contains "$T/err" "--target DIR" "a missing option"
expect_exit 1 "${PO[@]}" "$COFFER" forget --keep-daily seven
expect_exit 1 "${PO[@]}" "$COFFER" key lsit
expect_exit 1 "${PO[@]}" "$COFFER" bakup /srv
expect_exit 1 env -i PATH="$PATH" COFFER_PARSE_ONLY=yes "$COFFER" snapshots
# nothing is touched: a repository that does not exist is not an error, and
# an existing one is not read (no lock appears)
init_repo "$T/repo"
expect_exit 0 "${PO[@]}" COFFER_PASSWORD_FILE="$PWFILE" "$COFFER" -r "$T/repo" forget --keep-last 1 --prune
[ -z "$(ls "$T/repo/locks" 2> /dev/null)" ] || fail "parse-only took a lock"
expect_exit 0 "${PO[@]}" "$COFFER" -r "$T/nonexistent" snapshots
# the agent: every value is validated, unknown keys are refused (environment and file)
expect_exit 1 "${PO[@]}" COFFER_KEEP_DAYLY=7 "$COFFER" agent --print-config
assert_contains "$T/err" "unknown setting COFFER_KEEP_DAYLY" "an unknown key in the environment"
printf 'COFFER_KEEP_DAYLY=7\n' > "$T/bad.env"
expect_exit 1 "${PO[@]}" COFFER_CONFIG_FILE="$T/bad.env" "$COFFER" agent --print-config
assert_contains "$T/err" "unknown key COFFER_KEEP_DAYLY" "an unknown key in the file"
expect_exit 1 "${PO[@]}" COFFER_JITTER=soon "$COFFER" agent --print-config
assert_contains "$T/err" "COFFER_JITTER" "a bad value"
expect_exit 1 "${PO[@]}" "$COFFER" agent --once
assert_contains "$T/err" "COFFER_REPOSITORY is not set" "a missing required key"
# without parse-only an unknown key in the environment is only warned about
expect_exit 0 env -i PATH="$PATH" COFFER_KEEP_DAYLY=7 "$COFFER" agent --print-config
assert_contains "$T/err" "unknown setting COFFER_KEEP_DAYLY" "the warning"

# --- the examples -----------------------------------------------------------
"$PY" -c 'import yaml' 2> /dev/null || skip "python3-yaml is not installed: the examples are not checked"
# check_examples DIR DOCKERFILE: validate everything; prints one line per
# command line / environment checked ("ok ..." or "FAIL ..."); the extraction
# is examples_extract.py, shared with image.sh (which runs it in the image).
check_examples()
{
	"$PY" "$(dirname "$0")/examples_extract.py" check "$COFFER" "$1" "$2"
}

check_examples "$EX" "$SRC/Dockerfile" > "$T/examples.out" 2>&1
RC=$?
sed 's/^/    /' "$T/examples.out" >&2
[ "$RC" = 0 ] || soft_fail "an example holds a coffer command line or a setting the binary refuses (FAIL lines above)"
# the extraction found what is there (a broken extractor must not pass by finding nothing)
n_of() { grep -c "^ok   $1" "$T/examples.out"; }
[ "$(n_of 'docker-compose.yml:')" -ge 5 ] || soft_fail "docker-compose.yml: expected the backup and restore services and 3 header lines"
[ "$(n_of 'kubernetes/cronjob.yaml:coffer: coffer agent --once')" = 1 ] || soft_fail "the CronJob's command was not checked"
[ "$(n_of 'systemd/coffer-backup.service:[0-9]*: coffer agent --once')" = 1 ] || soft_fail "the service's ExecStart was not checked"
[ "$(n_of 'Dockerfile:HEALTHCHECK: coffer healthcheck')" = 1 ] || soft_fail "the Dockerfile's HEALTHCHECK was not checked"
[ "$(n_of 'quickstart.sh:')" -ge 7 ] || soft_fail "quickstart.sh: expected its 7 coffer commands"
[ "$(n_of 'developer-pull.sh:')" -ge 3 ] || soft_fail "developer-pull.sh: expected its 3 coffer commands"

# --- a broken copy must be refused, each mistake named -----------------------
B=$T/broken
cp -r "$EX" "$B"
sed -i 's/"--all", "--yes"/"--al", "--yes"/' "$B/docker-compose.yml"
sed -i 's/\["agent", "--once"\]/["agent", "--onse"]/' "$B/kubernetes/cronjob.yaml"
sed -i 's/^ExecStart=\(.*\) --once$/ExecStart=\1 --one/' "$B/systemd/coffer-backup.service"
sed -i 's/^coffer restore latest --target "\$NEW" --include \/mariadb$/coffer restore latest --target "$NEW" --includ \/mariadb/' \
	"$B/developer-pull.sh"
sed -i 's/^"\$coffer" check --read-data$/"$coffer" check --read-dat/' "$B/quickstart.sh"
printf 'COFFER_KEEP_DAYLY=7\n' >> "$B/coffer.env"
"$PY" - "$B/kubernetes/cronjob.yaml" << 'PYEOF'
import sys
p = sys.argv[1]
s = open(p).read()
old = "- name: COFFER_DOCKER_HOST\n                  value: none"
assert old in s
open(p, "w").write(s.replace(old, "- name: COFFER_DOCKER_HOST\n                  value: ssh://docker"))
PYEOF
check_examples "$B" "$SRC/Dockerfile" > "$T/broken.out" 2>&1
check_eq 1 "$?" "exit status of the check on the broken examples"
grep '^FAIL' "$T/broken.out" | sed 's/^/    broken copy: /' >&2
for want in "docker-compose.yml:restore: coffer restore /x --al" "cronjob.yaml:coffer: coffer agent --onse" \
	"coffer-backup.service:[0-9]*: coffer agent --one" "developer-pull.sh:[0-9]*: coffer restore latest --target /x --includ" \
	"quickstart.sh:[0-9]*: coffer check --read-dat" "docker-compose.yml:backup: environment  ->  .*COFFER_KEEP_DAYLY" \
	"systemd/coffer-backup.service: environment  ->  .*COFFER_KEEP_DAYLY" \
	"kubernetes/cronjob.yaml:coffer: environment  ->  .*COFFER_DOCKER_HOST"; do
	grep -q "^FAIL .*$want" "$T/broken.out" || soft_fail "the broken examples: no FAIL line for '$want'"
done
e2e_done
