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
# command line / environment checked ("ok ..." or "FAIL ...").
check_examples()
{
	"$PY" - "$COFFER" "$1" "$2" << 'PYEOF'
import os, re, shlex, subprocess, sys, yaml

coffer, ex, dockerfile = sys.argv[1:4]
failures = 0
counts = {}

def placeholders(arg):
    # shell and compose variables stand for paths or names: any word will do
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(:?[-=?][^}]*)?\}?", "/x", arg)

def run(where, argv, env):
    e = {"PATH": os.environ["PATH"], "COFFER_PARSE_ONLY": "1"}
    e.update(env)
    p = subprocess.run([coffer] + argv, env=e, capture_output=True, text=True)
    return p.returncode, (p.stderr.strip().splitlines() or [""])[-1]

def check_command(where, argv, env):
    global failures
    counts[where.split(":")[0]] = counts.get(where.split(":")[0], 0) + 1
    rc, msg = run(where, argv, env)
    line = "%s: coffer %s" % (where, " ".join(shlex.quote(a) for a in argv))
    if rc == 0:
        print("ok   " + line)
    else:
        failures += 1
        print("FAIL " + line + "  ->  " + msg)

def check_env(where, env):
    """The agent accepts every key and value of a container's environment."""
    global failures
    rc, msg = run(where, ["agent", "--print-config"], env)
    keys = " ".join(sorted(k for k in env if k.startswith("COFFER_")))
    if rc == 0:
        print("ok   %s: environment (%s)" % (where, keys))
    else:
        failures += 1
        print("FAIL %s: environment  ->  %s" % (where, msg))

def env_file(path):
    """KEY=VALUE lines as docker compose and systemd read them."""
    env = {}
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        k, _, v = line.partition("=")
        env[k.strip()] = v.strip()
    return env

def is_coffer(word):
    return os.path.basename(word) == "coffer" or re.fullmatch(r'\$\{?(coffer|COFFER)\}?', word)

# the image's defaults: ENTRYPOINT, CMD, ENV of the last stage
entrypoint, cmd, image_env, healthcheck = ["coffer"], ["agent"], {}, None
for line in open(dockerfile).read().replace("\\\n", " ").splitlines():
    w = line.split(None, 1)
    if not w:
        continue
    if w[0].upper() == "FROM":
        image_env = {}
    elif w[0].upper() == "ENTRYPOINT":
        entrypoint = yaml.safe_load(w[1])
    elif w[0].upper() == "CMD":
        cmd = yaml.safe_load(w[1])
    elif w[0].upper() == "HEALTHCHECK":
        hc = re.search(r"\bCMD\s+(.*)", w[1])
        healthcheck = yaml.safe_load(hc.group(1)) if hc and hc.group(1).startswith("[") else \
            shlex.split(hc.group(1)) if hc else None
    elif w[0].upper() == "ENV":
        for kv in shlex.split(w[1]):
            k, _, v = kv.partition("=")
            image_env[k] = v
if healthcheck and is_coffer(healthcheck[0]):
    check_command("Dockerfile:HEALTHCHECK", healthcheck[1:], image_env)
if not is_coffer(entrypoint[0]):
    print("FAIL Dockerfile: ENTRYPOINT %s is not coffer" % entrypoint)
    failures += 1

def as_list(x):
    if x is None:
        return None
    return shlex.split(x) if isinstance(x, str) else [str(a) for a in x]

# --- docker compose ---
for path in sorted(p for p in os.listdir(ex) if re.fullmatch(r"(docker-)?compose.*\.ya?ml", p)):
    where = path
    doc = yaml.safe_load(open(os.path.join(ex, path)))
    services = {}
    for name, s in (doc.get("services") or {}).items():
        if "coffer" not in str(s.get("image", "")) and "build" not in s:
            continue
        env = dict(image_env)
        files = s.get("env_file") or []
        for f in [files] if isinstance(files, str) else files:
            env.update(env_file(os.path.join(ex, f if isinstance(f, str) else f["path"])))
        e = s.get("environment") or {}
        if isinstance(e, list):
            e = dict(x.partition("=")[::2] for x in e)
        env.update({k: str(v).replace("$$", "$") for k, v in e.items() if v is not None})
        ep = as_list(s.get("entrypoint")) or entrypoint
        command = as_list(s.get("command"))
        if command is None:
            command = cmd if s.get("entrypoint") is None else []
        services[name] = (ep, env)
        check_env("%s:%s" % (where, name), env)
        if is_coffer(ep[0]):
            check_command("%s:%s" % (where, name), [placeholders(a) for a in ep[1:] + command], env)
    # `docker compose [OPTS] run|exec [OPTS] SERVICE [COMMAND...]` in comments
    for n, line in enumerate(open(os.path.join(ex, path)), 1):
        m = re.match(r"\s*#\s*(.*)", line)
        if not m:
            continue
        for part in re.split(r"&&|;|\|\|", m.group(1)):
            w = shlex.split(part, comments=True)
            if w[:2] != ["docker", "compose"]:
                continue
            w = w[2:]
            while w and w[0].startswith("-"):
                w = w[2:] if w[0] in ("--profile", "-f", "--file", "-p", "--project-name") else w[1:]
            if not w or w[0] not in ("run", "exec"):
                continue
            verb, w = w[0], w[1:]
            while w and w[0].startswith("-"):
                w = w[2:] if w[0] in ("-e", "--env", "-u", "--user", "-w", "--workdir", "--name") else w[1:]
            if not w or w[0] not in services:
                continue
            ep, env = services[w[0]]
            rest = w[1:]
            if verb == "exec" or (verb == "run" and rest and is_coffer(rest[0])):
                argv = rest[1:] if rest and is_coffer(rest[0]) else None
            elif rest:
                argv = ep[1:] + rest
            else:
                s = doc["services"][w[0]]
                argv = ep[1:] + (as_list(s.get("command")) or cmd)
            if argv is not None:
                check_command("%s:%d" % (where, n), [placeholders(a) for a in argv], env)

# --- Kubernetes ---
def containers(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("containers", "initContainers") and isinstance(v, list):
                yield from v
            else:
                yield from containers(v)
    elif isinstance(node, list):
        for v in node:
            yield from containers(v)

for root, _, names in os.walk(os.path.join(ex, "kubernetes")):
    for name in sorted(names):
        if not name.endswith((".yaml", ".yml")):
            continue
        where = os.path.relpath(os.path.join(root, name), ex)
        for doc in yaml.safe_load_all(open(os.path.join(root, name))):
            for c in containers(doc):
                if "coffer" not in str(c.get("image", "")):
                    continue
                env = dict(image_env)
                for e in c.get("env") or []:
                    # a value from a secret or a field: any word will do
                    env[e["name"]] = str(e.get("value", "x"))
                ep = [str(a) for a in c["command"]] if "command" in c else entrypoint
                args = [str(a) for a in c["args"]] if "args" in c else (cmd if "command" not in c else [])
                check_env("%s:%s" % (where, c.get("name")), env)
                if is_coffer(ep[0]):
                    check_command("%s:%s" % (where, c.get("name")), ep[1:] + args, env)

# --- systemd ---
for root, _, names in os.walk(os.path.join(ex, "systemd")):
    for name in sorted(names):
        if not name.endswith(".service"):
            continue
        where = os.path.relpath(os.path.join(root, name), ex)
        text = open(os.path.join(root, name)).read()
        # "install ... coffer.env /etc/coffer/agent.env" names the example behind an EnvironmentFile
        installed = {dst: src for src, dst in re.findall(r"install\s+(?:-\S+\s+\S+\s+)*(\S+)\s+(\S+)", text)}
        env, execs = {}, []
        for n, line in enumerate(text.splitlines(), 1):
            k, _, v = line.partition("=")
            k = k.strip()
            if k == "EnvironmentFile":
                f = v.strip().lstrip("-")
                local = installed.get(f)
                if local and os.path.exists(os.path.join(ex, local)):
                    env.update(env_file(os.path.join(ex, local)))
                else:
                    print("FAIL %s:%d: EnvironmentFile %s: no example behind it" % (where, n, f))
                    failures += 1
            elif k == "Environment":
                for kv in shlex.split(v):
                    a, _, b = kv.partition("=")
                    env[a] = b
            elif k in ("ExecStart", "ExecStartPre", "ExecStartPost", "ExecReload", "ExecStop"):
                execs.append((n, v.strip().lstrip("-@+!:")))
        check_env(where, env)
        for n, v in execs:
            w = shlex.split(v)
            if w and is_coffer(w[0]):
                check_command("%s:%d" % (where, n), w[1:], env)

# --- shell scripts: each simple command whose program is coffer ---
for name in sorted(os.listdir(ex)):
    if not name.endswith(".sh"):
        continue
    for n, line in enumerate(open(os.path.join(ex, name)), 1):
        if line.lstrip().startswith("#"):
            continue
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        lex.commenters = "#"
        try:
            words = list(lex)
        except ValueError:
            continue
        cur = []
        for w in words + [";"]:
            if re.fullmatch(r"[;&|<>()]+", w):
                if cur and is_coffer(cur[0]):
                    check_command("%s:%d" % (name, n), [placeholders(a) for a in cur[1:]], {})
                # a redirection's target is not a command word
                cur = [] if w not in (">", ">>", "<", "2>") else ["<redirect>"]
                continue
            if cur == ["<redirect>"]:
                cur = []
                continue
            if not cur and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", w):
                continue  # VAR=value before the command
            cur.append(w)

for k in sorted(counts):
    print("checked %d command line(s) in %s" % (counts[k], k))
sys.exit(1 if failures else 0)
PYEOF
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
open(p, "w").write(s.replace(old, "- name: COFFER_DOCKER_HOST\n                  value: tcp://docker:2375"))
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
