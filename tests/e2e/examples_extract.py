#!/usr/bin/env python3
"""examples_extract.py - the coffer command lines and container environments
of examples/, taken out of the files the way their runners read them; shared
by examples.sh (validated by the host binary) and image.sh (validated inside
the built image, and the compose restore service run as compose would).

  examples_extract.py check COFFER EXDIR DOCKERFILE
      run each command line and environment with COFFER under
      COFFER_PARSE_ONLY=1; print "ok   WHERE: ..." or "FAIL WHERE: ... -> why"
      per item and "checked N command line(s) in FILE"; exit 1 on a FAIL
  examples_extract.py script EXDIR DOCKERFILE
      print a POSIX sh script that does the same with the `coffer` on PATH
      (to run inside the image), and also checks that every program an
      example's COFFER_PRE/POST/PASSWORD_COMMAND names (commented-out
      template lines of env files included) is on PATH
  examples_extract.py service COMPOSEFILE NAME
      print, as JSON, how `docker compose run NAME` runs that service:
      {"project", "image", "command" (variables expanded from this process's
      environment, ${VAR:-default} as compose does), "env" (env_file then
      environment), "secrets" ({name: host file}), "volumes" (["SRC:DST[:MODE]"]
      with named volumes as PROJECT_NAME), "labels"}
Needs python3-yaml.
"""
import json, os, re, shlex, subprocess, sys, yaml

def placeholders(arg):
    # shell and compose variables stand for paths or names: any word will do
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(:?[-=?][^}]*)?\}?", "/x", arg)

def env_file(path, commented=False):
    """KEY=VALUE lines as docker compose and systemd read them; with
    commented, the "# KEY=VALUE" template lines instead."""
    env = {}
    for line in open(path):
        line = line.strip()
        if commented:
            m = re.fullmatch(r"#\s*([A-Z_][A-Z0-9_]*)=(.*)", line)
            if m:
                env[m.group(1)] = m.group(2).strip()
            continue
        if not line or line.startswith("#"):
            continue
        k, _, v = line.partition("=")
        env[k.strip()] = v.strip()
    return env

def is_coffer(word):
    return os.path.basename(word) == "coffer" or re.fullmatch(r'\$\{?(coffer|COFFER)\}?', word)

def as_list(x):
    if x is None:
        return None
    return shlex.split(x) if isinstance(x, str) else [str(a) for a in x]

def compose_env(ex, s, base):
    env = dict(base)
    files = s.get("env_file") or []
    for f in [files] if isinstance(files, str) else files:
        env.update(env_file(os.path.join(ex, f if isinstance(f, str) else f["path"])))
    e = s.get("environment") or {}
    if isinstance(e, list):
        e = dict(x.partition("=")[::2] for x in e)
    env.update({k: str(v).replace("$$", "$") for k, v in e.items() if v is not None})
    return env

def dockerfile_defaults(dockerfile):
    """The image's ENTRYPOINT, CMD, ENV of the last stage, HEALTHCHECK."""
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
    return entrypoint, cmd, image_env, healthcheck

def extract(ex, dockerfile):
    """Every item to check, in order: ("cmd", where, argv, env),
    ("env", where, env), ("tool", where, program), ("fail", message)."""
    items = []
    entrypoint, cmd, image_env, healthcheck = dockerfile_defaults(dockerfile)
    if healthcheck and is_coffer(healthcheck[0]):
        items.append(("cmd", "Dockerfile:HEALTHCHECK", healthcheck[1:], image_env))
    if not is_coffer(entrypoint[0]):
        items.append(("fail", "Dockerfile: ENTRYPOINT %s is not coffer" % entrypoint))

    # --- docker compose ---
    for path in sorted(p for p in os.listdir(ex) if re.fullmatch(r"(docker-)?compose.*\.ya?ml", p)):
        where = path
        doc = yaml.safe_load(open(os.path.join(ex, path)))
        services = {}
        for name, s in (doc.get("services") or {}).items():
            if "coffer" not in str(s.get("image", "")) and "build" not in s:
                continue
            env = compose_env(ex, s, image_env)
            ep = as_list(s.get("entrypoint")) or entrypoint
            command = as_list(s.get("command"))
            if command is None:
                command = cmd if s.get("entrypoint") is None else []
            services[name] = (ep, env)
            items.append(("env", "%s:%s" % (where, name), env))
            if is_coffer(ep[0]):
                items.append(("cmd", "%s:%s" % (where, name), [placeholders(a) for a in ep[1:] + command], env))
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
                    items.append(("cmd", "%s:%d" % (where, n), [placeholders(a) for a in argv], env))

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
                    items.append(("env", "%s:%s" % (where, c.get("name")), env))
                    if is_coffer(ep[0]):
                        items.append(("cmd", "%s:%s" % (where, c.get("name")), ep[1:] + args, env))

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
                        items.append(("fail", "%s:%d: EnvironmentFile %s: no example behind it" % (where, n, f)))
                elif k == "Environment":
                    for kv in shlex.split(v):
                        a, _, b = kv.partition("=")
                        env[a] = b
                elif k in ("ExecStart", "ExecStartPre", "ExecStartPost", "ExecReload", "ExecStop"):
                    execs.append((n, v.strip().lstrip("-@+!:")))
            items.append(("env", where, env))
            for n, v in execs:
                w = shlex.split(v)
                if w and is_coffer(w[0]):
                    items.append(("cmd", "%s:%d" % (where, n), w[1:], env))

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
                        items.append(("cmd", "%s:%d" % (name, n), [placeholders(a) for a in cur[1:]], {}))
                    # a redirection's target is not a command word
                    cur = [] if w not in (">", ">>", "<", "2>") else ["<redirect>"]
                    continue
                if cur == ["<redirect>"]:
                    cur = []
                    continue
                if not cur and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", w):
                    continue  # VAR=value before the command
                cur.append(w)

    # --- programs the hooks run (set or offered as templates in env files) ---
    hook_keys = ("COFFER_PRE_COMMAND", "COFFER_POST_COMMAND", "COFFER_PASSWORD_COMMAND")
    for name in sorted(os.listdir(ex)):
        if not name.endswith(".env"):
            continue
        for env in (env_file(os.path.join(ex, name)), env_file(os.path.join(ex, name), commented=True)):
            for k in hook_keys:
                w = shlex.split(env.get(k, ""))
                if w:
                    items.append(("tool", "%s:%s" % (name, k), w[0]))
    return items

def line_of(where, argv):
    return "%s: coffer %s" % (where, " ".join(shlex.quote(a) for a in argv))

def env_keys(env):
    return " ".join(sorted(k for k in env if k.startswith("COFFER_")))

def check(coffer, ex, dockerfile):
    failures = 0
    counts = {}

    def run(argv, env):
        e = {"PATH": os.environ["PATH"], "COFFER_PARSE_ONLY": "1"}
        e.update(env)
        p = subprocess.run([coffer] + argv, env=e, capture_output=True, text=True)
        return p.returncode, (p.stderr.strip().splitlines() or [""])[-1]

    for it in extract(ex, dockerfile):
        if it[0] == "fail":
            failures += 1
            print("FAIL " + it[1])
        elif it[0] == "cmd":
            where, argv, env = it[1:]
            counts[where.split(":")[0]] = counts.get(where.split(":")[0], 0) + 1
            rc, msg = run(argv, env)
            if rc == 0:
                print("ok   " + line_of(where, argv))
            else:
                failures += 1
                print("FAIL " + line_of(where, argv) + "  ->  " + msg)
        elif it[0] == "env":
            # the agent accepts every key and value of a container's environment
            where, env = it[1:]
            rc, msg = run(["agent", "--print-config"], env)
            if rc == 0:
                print("ok   %s: environment (%s)" % (where, env_keys(env)))
            else:
                failures += 1
                print("FAIL %s: environment  ->  %s" % (where, msg))
        # "tool": the host is not the image; image.sh checks them there
    for k in sorted(counts):
        print("checked %d command line(s) in %s" % (counts[k], k))
    return 1 if failures else 0

def script(ex, dockerfile):
    q = shlex.quote
    out = ["#!/bin/sh", "# generated by tests/e2e/examples_extract.py: the examples' coffer command lines",
           "f=0; e=${TMPDIR:-/tmp}/examples.err",
           "v() { if \"$@\" > /dev/null 2> \"$e\"; then return 0; fi; m=$(tail -n 1 \"$e\"); return 1; }"]
    counts = {}
    for it in extract(ex, dockerfile):
        if it[0] == "fail":
            out.append("echo %s; f=1" % q("FAIL " + it[1]))
            continue
        if it[0] == "tool":
            where, prog = it[1:]
            line = "%s: program %s" % (where, prog)
            out.append("if command -v %s > /dev/null; then echo %s; else echo %s; f=1; fi"
                       % (q(prog), q("ok   " + line), q("FAIL " + line + "  ->  not on PATH")))
            continue
        if it[0] == "cmd":
            where, argv, env = it[1:]
            counts[where.split(":")[0]] = counts.get(where.split(":")[0], 0) + 1
            line = line_of(where, argv)
        else:
            where, env = it[1:]
            argv = ["agent", "--print-config"]
            line = "%s: environment (%s)" % (where, env_keys(env))
            bad = "FAIL %s: environment" % where
        assigns = " ".join(q("%s=%s" % kv) for kv in env.items())
        out.append("if v env -i PATH=\"$PATH\" COFFER_PARSE_ONLY=1 %s coffer %s; then echo %s; else echo %s\"  ->  $m\"; f=1; fi"
                   % (assigns, " ".join(q(a) for a in argv), q("ok   " + line),
                      q(("FAIL " + line) if it[0] == "cmd" else bad)))
    for k in sorted(counts):
        out.append("echo %s" % q("checked %d command line(s) in %s" % (counts[k], k)))
    out.append("exit $f")
    print("\n".join(out))
    return 0

def expand(s, env):
    """Compose's interpolation: $$, ${VAR}, ${VAR:-default}, ${VAR-default}, $VAR."""
    def one(m):
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, default = m.group(2), m.group(3) or ""
        v = env.get(name)
        if op == ":-":
            return v if v else default
        if op == "-":
            return default if v is None else v
        return v or ""
    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)", one, s)

def service(compose, name):
    ex = os.path.dirname(os.path.abspath(compose))
    doc = yaml.safe_load(open(compose))
    project = doc.get("name") or os.path.basename(ex)
    s = doc["services"][name]
    secrets = {}
    for sec in s.get("secrets") or []:
        sname = sec if isinstance(sec, str) else sec["source"]
        secrets[sname] = os.path.normpath(os.path.join(ex, doc["secrets"][sname]["file"]))
    named = set(doc.get("volumes") or {})
    volumes = []
    for v in s.get("volumes") or []:
        src, _, rest = v.partition(":")
        volumes.append(("%s_%s" % (project, src) if src in named else src) + ":" + rest)
    command = as_list(s.get("command"))
    labels = s.get("labels") or {}
    if isinstance(labels, list):
        labels = dict(x.partition("=")[::2] for x in labels)
    print(json.dumps({
        "project": project, "image": s.get("image"),
        "command": None if command is None else [expand(a, os.environ) for a in command],
        "env": compose_env(ex, s, {}), "secrets": secrets, "volumes": volumes,
        "labels": {k: str(v) for k, v in labels.items()}}))
    return 0

if __name__ == "__main__":
    a = sys.argv[1:]
    if a[:1] == ["check"] and len(a) == 4:
        sys.exit(check(*a[1:]))
    if a[:1] == ["script"] and len(a) == 3:
        sys.exit(script(*a[1:]))
    if a[:1] == ["service"] and len(a) == 3:
        sys.exit(service(*a[1:]))
    sys.exit(__doc__)
