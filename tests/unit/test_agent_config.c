/*
 * test_agent_config - the agent's settings: defaults, every key's validation
 * (a bad value is refused naming the key, never quoting a secret), the config
 * file (quotes, multi-line values, unknown keys, the environment winning),
 * keys exported for the S3 backend and unset again on reload, the key table
 * matching doc/agent.md; and the schedule helpers the loop uses (ticks
 * skipped while a job ran, --print-schedule) and the healthcheck's verdicts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/config.h"
#include "agent/daemon.h"
#include "agent/metrics.h"
#include "common/error.h"

static char dir[] = "/tmp/coffer-test-agent-XXXXXX";
static char pwfile[128];

/* A fake environment: NULL-terminated pairs. */
struct env { const char *kv[64]; };

static const char *env_get(void *ctx, const char *key)
{
	struct env *e = ctx;
	for (size_t i = 0; e->kv[i]; i += 2)
		if (!strcmp(e->kv[i], key))
			return e->kv[i + 1];
	return NULL;
}

static int load(struct cf_agent_config *c, struct env *e)
{
	return cf_agent_config_load(c, env_get, e);
}

#define BASE "COFFER_REPOSITORY", "/srv/repo", "COFFER_PASSWORD_FILE", pwfile

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(pwfile, sizeof(pwfile), "%s/pw", dir);
	FILE *f = fopen(pwfile, "w");
	fputs("secret\n", f);
	fclose(f);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_defaults(void **state)
{
	(void)state;
	struct env e = { { BASE, NULL } };
	struct cf_agent_config c = CF_AGENT_CONFIG_INIT;
	int r = load(&c, &e);
	if (r)
		fail_msg("%s", cf_errmsg(r));
	assert_string_equal(c.schedule, "4 5 * * *");
	assert_string_equal(c.tz, "UTC");
	assert_string_equal(c.backup_root, "/backup");
	assert_int_equal(c.npaths, 0);
	assert_string_equal(c.state_dir, "/var/lib/coffer");
	assert_string_equal(c.docker_host, "/var/run/docker.sock");
	assert_false(c.docker_explicit);
	assert_string_equal(c.stop_label, "coffer.stop-during-backup=true");
	assert_int_equal(c.stop_timeout, 30);
	assert_false(c.run_missed);
	assert_int_equal(c.jitter, 0);
	assert_int_equal(c.webhook_retries, 10);
	assert_int_equal(c.webhook_retry_for, 900);
	assert_true(c.webhook_backoff == 5);
	assert_int_equal(c.nnotify, 0);
	assert_int_equal(c.notify_level, CF_NOTIFY_LEVEL_ERROR);
	assert_null(c.webhook_url);
	assert_null(c.cacert);
	assert_int_equal(c.s3_connections, 0);
	assert_false(c.s3_sign_payload);
	assert_true(cf_retention_policy_empty(&c.keep));
	assert_string_equal(c.password_file, pwfile);
	cf_agent_config_release(&c);
}

/* The engine addresses people deploy with: a unix socket, an engine's or a
 * docker-socket-proxy's tcp:// or http://, DOCKER_HOST when coffer's own key
 * is unset; TLS refused by name.  And offen's stop label beside coffer's. */
static void test_docker_hosts(void **state)
{
	(void)state;
	static const char *const ok[][2] = {
		{ "tcp://docker:2375", "http://docker:2375" },
		{ "tcp://10.0.0.5", "http://10.0.0.5:2375" },
		{ "http://socket-proxy:2375/", "http://socket-proxy:2375" },
		{ "tcp://[::1]:2375", "http://[::1]:2375" },
		{ "tcp://docker:2375/base/", "http://docker:2375/base" },
		{ "unix:///run/podman/podman.sock", "/run/podman/podman.sock" },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct env e = { { BASE, "COFFER_DOCKER_HOST", ok[i][0], NULL } };
		struct cf_agent_config c = CF_AGENT_CONFIG_INIT;
		int r = load(&c, &e);
		if (r)
			fail_msg("%s: %s", ok[i][0], cf_errmsg(r));
		assert_string_equal(c.docker_host, ok[i][1]);
		assert_true(c.docker_explicit);
		cf_agent_config_release(&c);
	}
	/* DOCKER_HOST when COFFER_DOCKER_HOST is unset; coffer's key wins */
	struct env e1 = { { BASE, "DOCKER_HOST", "tcp://proxy:2375", NULL } };
	struct cf_agent_config c = CF_AGENT_CONFIG_INIT;
	assert_int_equal(load(&c, &e1), CF_OK);
	assert_string_equal(c.docker_host, "http://proxy:2375");
	assert_true(c.docker_explicit);
	cf_agent_config_release(&c);
	struct env e2 = { { BASE, "DOCKER_HOST", "tcp://proxy:2375", "COFFER_DOCKER_HOST", "none", NULL } };
	assert_int_equal(load(&c, &e2), CF_OK);
	assert_null(c.docker_host);
	cf_agent_config_release(&c);
	struct env e3 = { { BASE, "DOCKER_HOST", "ssh://me@docker", NULL } };
	assert_int_equal(load(&c, &e3), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "DOCKER_HOST: \"ssh://me@docker\""));
	cf_agent_config_release(&c);
	/* tcp:// with DOCKER_TLS_VERIFY: TLS is asked for, and not spoken */
	setenv("DOCKER_TLS_VERIFY", "1", 1);
	struct env e4 = { { BASE, "COFFER_DOCKER_HOST", "tcp://docker:2376", NULL } };
	assert_int_equal(load(&c, &e4), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "DOCKER_TLS_VERIFY"));
	cf_agent_config_release(&c);
	unsetenv("DOCKER_TLS_VERIFY");

	/* offen's docker-volume-backup.stop-during-backup, with the value of the stop label */
	static const char *const alias[][2] = {
		{ NULL, "docker-volume-backup.stop-during-backup=true" },
		{ "coffer.stop-during-backup=service1", "docker-volume-backup.stop-during-backup=service1" },
		{ "backup.stop", "docker-volume-backup.stop-during-backup=true" },
	};
	for (size_t i = 0; i < sizeof(alias) / sizeof(alias[0]); i++) {
		struct env e = { { BASE, alias[i][0] ? "COFFER_STOP_LABEL" : NULL, alias[i][0], NULL } };
		assert_int_equal(load(&c, &e), CF_OK);
		assert_string_equal(c.stop_alias, alias[i][1]);
		cf_agent_config_release(&c);
	}
}

static void test_values(void **state)
{
	(void)state;
	char paths[300];
	snprintf(paths, sizeof(paths), "%s, %s", dir, pwfile);
	struct env e = { { BASE,
		"COFFER_SCHEDULE", "@hourly", "TZ", "Europe/Berlin", "COFFER_RUN_MISSED", "yes",
		"COFFER_JITTER", "15m", "COFFER_BACKUP_PATHS", paths, "COFFER_TAGS", "a, b,,c",
		"COFFER_KEEP_DAILY", "7", "COFFER_KEEP_LAST", "unlimited", "COFFER_KEEP_WITHIN", "1y2d",
		"COFFER_MARIADB", "mariadb://root@db/app,shop\n mysql://u:p@other:3307",
		"COFFER_STDIN_COMMANDS", "pg/app.sql=pg_dump -Fp app\n\n  ldap.ldif = slapcat -n 1 | gzip -1 ",
		"COFFER_DOCKER_HOST", "unix:///run/podman/podman.sock", "COFFER_STOP_LABEL", "backup.stop",
		"COFFER_WEBHOOK_URL", "https://hooks.example/x",
		"COFFER_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"COFFER_METRICS_LISTEN", ":9100", "COFFER_PRUNE_SCHEDULE", "off",
		"COFFER_WEBHOOK_RETRY_FOR", "2h", "COFFER_WEBHOOK_BACKOFF", "0.25", "COFFER_WEBHOOK_RETRIES", "40",
		"COFFER_NOTIFY_URLS", ("hc+https://hc-ping.com/abc/ ,kuma+http://kuma:3001/api/push/T?status=up&msg=OK&ping=\n"
				       "  ntfy+https://u:p@ntfy.sh/backups https://ping.example/{job}/{status}?h={host}"),
		"COFFER_NOTIFY_LEVEL", "info",
		"COFFER_CACERT", pwfile, "COFFER_S3_CONNECTIONS", "3", "COFFER_S3_SIGN_PAYLOAD", "true", NULL } };
	struct cf_agent_config c = CF_AGENT_CONFIG_INIT;
	int r = load(&c, &e);
	if (r)
		fail_msg("%s", cf_errmsg(r));
	assert_string_equal(c.tz, "Europe/Berlin");
	assert_int_equal(c.webhook_retry_for, 7200);
	assert_true(c.webhook_backoff == 0.25);
	assert_int_equal(c.webhook_retries, 40);
	assert_int_equal(c.nnotify, 4);
	assert_int_equal(c.notify[0].kind, CF_NOTIFY_HEALTHCHECKS);
	assert_string_equal(c.notify[0].url, "https://hc-ping.com/abc/");
	assert_int_equal(c.notify[1].kind, CF_NOTIFY_KUMA);
	assert_int_equal(c.notify[2].kind, CF_NOTIFY_NTFY);
	assert_string_equal(c.notify[2].url, "https://u:p@ntfy.sh/backups");
	assert_int_equal(c.notify[3].kind, CF_NOTIFY_GENERIC);
	assert_string_equal(c.notify[3].url, "https://ping.example/{job}/{status}?h={host}");
	assert_int_equal(c.notify_level, CF_NOTIFY_LEVEL_INFO);
	assert_true(c.run_missed);
	assert_int_equal(c.jitter, 900);
	assert_int_equal(c.npaths, 2);
	assert_string_equal(c.paths[1], pwfile);
	assert_int_equal(c.ntags, 3);
	assert_string_equal(c.tags[2], "c");
	assert_int_equal(c.keep.daily, 7);
	assert_int_equal(c.keep.last, CF_KEEP_UNLIMITED);
	assert_int_equal(c.keep.within.years, 1);
	assert_int_equal(c.keep.within.days, 2);
	assert_int_equal(c.nmariadb, 2);
	assert_string_equal(c.mariadb[0], "mariadb://root@db/app,shop");
	assert_int_equal(c.nstdin_cmds, 2);
	assert_string_equal(c.stdin_cmds[0].path, "pg/app.sql");
	assert_string_equal(c.stdin_cmds[0].command, "pg_dump -Fp app");
	assert_string_equal(c.stdin_cmds[1].path, "ldap.ldif");
	assert_string_equal(c.stdin_cmds[1].command, "slapcat -n 1 | gzip -1");
	assert_string_equal(c.docker_host, "/run/podman/podman.sock");
	assert_true(c.docker_explicit);
	assert_string_equal(c.prune_schedule, "off");
	assert_string_equal(c.cacert, pwfile);
	assert_int_equal(c.s3_connections, 3);
	assert_true(c.s3_sign_payload);
	cf_agent_config_release(&c);
}

struct bad { const char *key, *value, *want; };

/* Every validated key with a bad value: the message names the key and says
 * what is wrong. */
static void test_bad_values(void **state)
{
	(void)state;
	static const struct bad cases[] = {
		{ "COFFER_REPOSITORY", "relative/dir", "neither an absolute directory" },
		{ "COFFER_REPOSITORY", "s3:ftp://x/b", "not an S3 location" },
		{ "COFFER_PASSWORD_FILE", "/nonexistent/pw", "cannot use /nonexistent/pw" },
		{ "COFFER_SCHEDULE", "61 5 * * *", "minute field" },
		{ "COFFER_SCHEDULE", "@reboot", "@reboot" },
		{ "TZ", "Mars/Olympus", "unknown time zone" },
		{ "COFFER_RUN_MISSED", "maybe", "not a boolean" },
		{ "COFFER_JITTER", "5 minutes", "not a duration" },
		{ "COFFER_JITTER", "2d", "longer than the maximum" },
		{ "COFFER_BACKUP_PATHS", "data", "not an absolute path" },
		{ "COFFER_BACKUP_PATHS", "/nonexistent/volume", "cannot back up /nonexistent/volume" },
		{ "COFFER_BACKUP_ROOT", "backup", "not an absolute path" },
		{ "COFFER_STATE_DIR", "state", "not an absolute path" },
		{ "COFFER_MARIADB", "postgres://x@y/z", "" },
		{ "COFFER_MARIADB_LOCK", "2", "not a boolean" },
		{ "COFFER_SQLITE", "app.db", "not an absolute path" },
		{ "COFFER_STDIN_COMMANDS", "pg_dump app", "not FILENAME=COMMAND" },
		{ "COFFER_STDIN_COMMANDS", "../etc/passwd=cat x", "relative path without '..'" },
		{ "COFFER_STDIN_COMMANDS", "/abs.sql=cat x", "relative path" },
		{ "COFFER_KEEP_LAST", "seven", "not a whole number" },
		{ "COFFER_KEEP_HOURLY", "-3", "not a whole number" },
		{ "COFFER_KEEP_DAILY", "7d", "not a whole number" },
		{ "COFFER_KEEP_WEEKLY", "1.5", "not a whole number" },
		{ "COFFER_KEEP_MONTHLY", "99999999", "not a whole number" },
		{ "COFFER_KEEP_YEARLY", "", "not a whole number" },
		{ "COFFER_KEEP_WITHIN", "3w", "" },
		{ "COFFER_PRUNE_SCHEDULE", "weekly", "" },
		{ "COFFER_CHECK_SCHEDULE", "0 25 * * *", "hour field" },
		{ "COFFER_DOCKER_HOST", "unix://run/docker.sock", "not unix:///PATH" },
		{ "COFFER_DOCKER_HOST", "tcp://", "not a Docker engine address" },
		{ "COFFER_DOCKER_HOST", "tcp://:2375", "not a Docker engine address" },
		{ "COFFER_DOCKER_HOST", "tcp://docker:99999", "not a Docker engine address" },
		{ "COFFER_DOCKER_HOST", "tcp://docker:0", "port 0 is not 1-65535" },
		{ "COFFER_DOCKER_HOST", "tcp://u:p@docker:2375", "takes no user" },
		{ "COFFER_DOCKER_HOST", "http://docker:2375/?x=1", "takes no user, query" },
		{ "COFFER_DOCKER_HOST", "https://docker:2376", "TLS to the Docker engine" },
		{ "COFFER_DOCKER_HOST", "ssh://me@docker", "ssh:// and npipe:// are not supported" },
		{ "COFFER_DOCKER_HOST", "/var/run/docker.sock", "not a Docker engine address" },
		{ "COFFER_STOP_LABEL", "=true", "not a label" },
		{ "COFFER_STOP_LABEL", "a label=x", "only letters" },
		{ "COFFER_STOP_TIMEOUT", "2h", "longer than the maximum" },
		{ "COFFER_METRICS_FILE", "/nonexistent/dir/coffer.prom", "does not exist" },
		{ "COFFER_METRICS_LISTEN", "9100", "[ADDRESS]:PORT" },
		{ "COFFER_METRICS_LISTEN", ":70000", "[ADDRESS]:PORT" },
		{ "COFFER_WEBHOOK_URL", "hooks.example/x", "not an http:// or https:// URL" },
		{ "COFFER_WEBHOOK_SECRET", "whsec_not*base64!", "not a Standard Webhooks secret" },
		{ "COFFER_WEBHOOK_SECRET", "whsec_c2hvcnQ=", "5 bytes; Standard Webhooks secrets are 24 to 64" },
		/* 16 bytes: accepted before, below the specification's 24 */
		{ "COFFER_WEBHOOK_SECRET", "whsec_MDEyMzQ1Njc4OWFiY2RlZg==", "secret 1 is 16 bytes" },
		/* rotation: each secret is checked, the bad one named by its place */
		{ "COFFER_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_c2hvcnQ=", "secret 2 is 5 bytes" },
		{ "COFFER_WEBHOOK_RETRY_FOR", "forever", "not a duration" },
		{ "COFFER_WEBHOOK_RETRY_FOR", "2d", "longer than the maximum" },
		{ "COFFER_WEBHOOK_BACKOFF", "0", "not a number of seconds from 0.01 to 3600" },
		{ "COFFER_WEBHOOK_BACKOFF", "5m", "not a number of seconds" },
		{ "COFFER_NOTIFY_URLS", "https://hc-ping.com/1234", "has no kind: write hc+URL" },
		{ "COFFER_NOTIFY_URLS", "hc+ftp://x/y", "not an http:// or https:// URL" },
		{ "COFFER_NOTIFY_URLS", "ntfy+https://ntfy.sh/t, gotify://x", "\"gotify://x\" is not an http" },
		{ "COFFER_NOTIFY_URLS", "https://u:sekrit@ping.example/x", "\"https://u:***@ping.example/x\" has no kind" },
		{ "COFFER_NOTIFY_LEVEL", "warn", "not error or info" },
		{ "COFFER_WEBHOOK_SECRET_FILE", "/nonexistent/s", "cannot use /nonexistent/s" },
		{ "COFFER_WEBHOOK_RETRIES", "101", "not a whole number from 0 to 100" },
		{ "COFFER_VERBOSE", "loud", "not a boolean" },
		{ "COFFER_CACERT", "ca.pem", "not an absolute path" },
		{ "COFFER_CACERT", "/nonexistent/ca.pem", "cannot use /nonexistent/ca.pem" },
		{ "COFFER_S3_CONNECTIONS", "0", "not a whole number from 1 to 128" },
		{ "COFFER_S3_CONNECTIONS", "many", "not a whole number from 1 to 128" },
		{ "COFFER_S3_SIGN_PAYLOAD", "sure", "not a boolean" },
		{ "AWS_SECRET_ACCESS_KEY_FILE", "/nonexistent/k", "cannot use /nonexistent/k" },
		{ "MARIADB_PASSWORD_FILE", "relative", "not an absolute path" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad *b = &cases[i];
		struct env e = { { b->key, b->value, BASE, "COFFER_WEBHOOK_URL", "http://127.0.0.1:1/", NULL } };
		if (!strcmp(b->key, "COFFER_WEBHOOK_URL"))
			e.kv[6] = "COFFER_VERBOSE", e.kv[7] = "0";
		struct cf_agent_config c = CF_AGENT_CONFIG_INIT;
		int r = load(&c, &e);
		const char *m = cf_errmsg(r);
		if (r != CF_EINVAL && r != CF_ENOENT)
			fail_msg("%s=%s: expected a refusal, got %d (%s)", b->key, b->value, r, m);
		if (strncmp(m, b->key, strlen(b->key)) || m[strlen(b->key)] != ':')
			fail_msg("%s=%s: message does not start with the key: %s", b->key, b->value, m);
		if (!strstr(m, b->want))
			fail_msg("%s=%s: message lacks \"%s\": %s", b->key, b->value, b->want, m);
		if (strstr(b->key, "SECRET") && !strstr(b->key, "_FILE") && strstr(m, b->value + 6))
			fail_msg("%s: the message quotes the secret: %s", b->key, m);
		assert_null(c.repository); /* released on failure */
		cf_agent_config_release(&c);
	}
}

static void test_required(void **state)
{
	(void)state;
	struct cf_agent_config c = CF_AGENT_CONFIG_INIT;
	struct env e1 = { { "COFFER_PASSWORD_FILE", pwfile, NULL } };
	assert_int_equal(load(&c, &e1), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "COFFER_REPOSITORY is not set"));
	struct env e2 = { { "COFFER_REPOSITORY", "/r", NULL } };
	assert_int_equal(load(&c, &e2), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "COFFER_PASSWORD_FILE is not set"));
	struct env e3 = { { BASE, "COFFER_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", NULL } };
	assert_int_equal(load(&c, &e3), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "COFFER_WEBHOOK_URL is not"));
	/* --print-schedule needs neither */
	struct env e4 = { { "COFFER_SCHEDULE", "0 3 * * MON", NULL } };
	assert_int_equal(cf_agent_config_load_schedule(&c, env_get, &e4), CF_OK);
	assert_string_equal(c.schedule, "0 3 * * MON");
	cf_agent_config_release(&c);
}

static void test_file(void **state)
{
	(void)state;
	char path[256], text[1024];
	snprintf(path, sizeof(path), "%s/agent.env", dir);
	snprintf(text, sizeof(text),
		 "# coffer agent settings\n"
		 "COFFER_REPOSITORY=/from/file\n"
		 "export COFFER_PASSWORD_FILE = '%s'\n"
		 "COFFER_SCHEDULE=\"15 3 * * *\"\n"
		 "\n"
		 "COFFER_STDIN_COMMANDS=\"a.sql=echo a\n"
		 "b.sql=echo b\"\n"
		 "COFFER_KEEP_DAILY=5   \n"
		 "AWS_SECRET_ACCESS_KEY=from-the-file\n", pwfile);
	write_file(path, text);
	struct env e = { { "COFFER_CONFIG_FILE", path, "COFFER_KEEP_DAILY", "9", NULL } };
	struct cf_agent_config c = CF_AGENT_CONFIG_INIT;
	unsetenv("AWS_SECRET_ACCESS_KEY");
	int r = load(&c, &e);
	if (r)
		fail_msg("%s", cf_errmsg(r));
	assert_string_equal(c.repository, "/from/file");
	assert_string_equal(c.password_file, pwfile);
	assert_string_equal(c.schedule, "15 3 * * *");
	assert_int_equal(c.nstdin_cmds, 2);
	assert_string_equal(c.stdin_cmds[1].command, "echo b");
	assert_int_equal(c.keep.daily, 9); /* the environment wins */
	/* the S3 backend reads its credentials with getenv() */
	assert_non_null(getenv("AWS_SECRET_ACCESS_KEY"));
	assert_string_equal(getenv("AWS_SECRET_ACCESS_KEY"), "from-the-file");

	/* a reload with the key removed from the file unsets it again */
	snprintf(text, sizeof(text), "COFFER_REPOSITORY=/from/file\nCOFFER_PASSWORD_FILE=%s\n", pwfile);
	write_file(path, text);
	r = load(&c, &e);
	if (r)
		fail_msg("%s", cf_errmsg(r));
	assert_null(getenv("AWS_SECRET_ACCESS_KEY"));

	/* a typo in the file is refused with the line */
	snprintf(text, sizeof(text), "COFFER_REPOSITORY=/r\nCOFFER_PASSWORD_FILE=%s\nCOFFER_SHEDULE=@daily\n", pwfile);
	write_file(path, text);
	assert_int_equal(load(&c, &e), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "agent.env:3: unknown key COFFER_SHEDULE"));
	write_file(path, "COFFER_REPOSITORY\n");
	assert_int_equal(load(&c, &e), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "agent.env:1: not KEY=VALUE"));
	write_file(path, "COFFER_PRE_COMMAND=\"echo unterminated\n");
	assert_int_equal(load(&c, &e), CF_EINVAL);
	assert_non_null(strstr(cf_errmsg(CF_EINVAL), "unterminated quote"));
	struct env missing = { { "COFFER_CONFIG_FILE", "/nonexistent/agent.env", NULL } };
	assert_int_equal(load(&c, &missing), CF_ENOENT);
	assert_non_null(strstr(cf_errmsg(CF_ENOENT), "COFFER_CONFIG_FILE"));
	cf_agent_config_release(&c);
}

/* Copy targets (COFFER_COPY_TO_<NAME>_*) from the file: names with '_',
 * the longest suffix wins, _FROM resolved and the targets ordered after
 * their source; unknown endings, loops and missing keys refused naming the
 * key; a target's secrets never printed. */
static int load_copies_text(struct cf_agent_config *c, const char *copies)
{
	char path[256], text[2048];
	snprintf(path, sizeof(path), "%s/copies.env", dir);
	snprintf(text, sizeof(text), "COFFER_REPOSITORY=/srv/repo\nCOFFER_PASSWORD_FILE=%s\n%s", pwfile, copies);
	write_file(path, text);
	struct env e = { { "COFFER_CONFIG_FILE", path, NULL } };
	static struct env keep;
	keep = e;
	return cf_agent_config_load(c, env_get, &keep);
}

static void test_copy_targets(void **state)
{
	(void)state;
	struct cf_agent_config c = CF_AGENT_CONFIG_INIT;
	char text[2048];
	snprintf(text, sizeof(text),
		 "COFFER_COPY_TO_ZMONTHLY_REPOSITORY=s3://monthly\n"
		 "COFFER_COPY_TO_ZMONTHLY_PASSWORD=monthly-secret-pw\n"
		 "COFFER_COPY_TO_ZMONTHLY_FROM=off_site\n"
		 "COFFER_COPY_TO_ZMONTHLY_SCHEDULE=0 3 1 * *\n"
		 "COFFER_COPY_TO_ZMONTHLY_KEEP_MONTHLY=24\n"
		 "COFFER_COPY_TO_OFF_SITE_REPOSITORY=/srv/offsite\n"
		 "COFFER_COPY_TO_OFF_SITE_PASSWORD_FILE=%s\n"
		 "COFFER_COPY_TO_OFF_SITE_AWS_ACCESS_KEY_ID=AKIAOFF\n"
		 "COFFER_COPY_TO_OFF_SITE_AWS_SECRET_ACCESS_KEY_FILE=%s\n"
		 "COFFER_COPY_TO_OFF_SITE_KEEP_DAILY=7\n", pwfile, pwfile);
	int r = load_copies_text(&c, text);
	if (r)
		fail_msg("%s", cf_errmsg(r));
	assert_int_equal(c.ncopies, 2);
	assert_string_equal(c.copies[0].name, "off_site");
	assert_string_equal(c.copies[0].password_file, pwfile);      /* PASSWORD_FILE, not a target "OFF_SITE_PASSWORD" */
	assert_string_equal(c.copies[0].secret_key_file, pwfile);
	assert_string_equal(c.copies[0].access_key, "AKIAOFF");
	assert_null(c.copies[0].schedule);                            /* after each backup */
	assert_int_equal(c.copies[0].keep.daily, 7);
	assert_int_equal(c.copies[0].from, -1);
	assert_string_equal(c.copies[1].name, "zmonthly");
	assert_int_equal(c.copies[1].from, 0);
	assert_string_equal(c.copies[1].schedule, "0 3 1 * *");
	assert_int_equal(c.copies[1].keep.monthly, 24);
	cf_agent_config_release(&c);

	/* "zz" sorts after "off": the ordering by _FROM, not by name, puts a source first */
	r = load_copies_text(&c, "COFFER_COPY_TO_A_REPOSITORY=/a\nCOFFER_COPY_TO_A_PASSWORD=x\nCOFFER_COPY_TO_A_FROM=Z\n"
				 "COFFER_COPY_TO_Z_REPOSITORY=/z\nCOFFER_COPY_TO_Z_PASSWORD=y\n");
	if (r)
		fail_msg("%s", cf_errmsg(r));
	assert_string_equal(c.copies[0].name, "z");
	assert_string_equal(c.copies[1].name, "a");
	assert_int_equal(c.copies[1].from, 0);
	cf_agent_config_release(&c);

	static const struct { const char *text, *msg; } bad[] = {
		{ "COFFER_COPY_TO_X_REPOSITORY=/x\nCOFFER_COPY_TO_X_PASSWORD=p\nCOFFER_COPY_TO_X_KEEP_MONHTLY=3\n",
		  "unknown key COFFER_COPY_TO_X_KEEP_MONHTLY" },
		{ "COFFER_COPY_TO_X_REPOSITORY=/x\n", "COFFER_COPY_TO_X_PASSWORD_FILE is not set" },
		{ "COFFER_COPY_TO_X_PASSWORD=p\n", "COFFER_COPY_TO_X_REPOSITORY is not set" },
		{ "COFFER_COPY_TO_X_REPOSITORY=/srv/repo\nCOFFER_COPY_TO_X_PASSWORD=p\n", "is the main repository" },
		{ "COFFER_COPY_TO_X_REPOSITORY=/x\nCOFFER_COPY_TO_X_PASSWORD=p\nCOFFER_COPY_TO_X_FROM=y\n",
		  "COFFER_COPY_TO_X_FROM: there is no copy target \"y\"" },
		{ "COFFER_COPY_TO_X_REPOSITORY=/x\nCOFFER_COPY_TO_X_PASSWORD=p\nCOFFER_COPY_TO_X_FROM=x\n", "itself" },
		{ "COFFER_COPY_TO_X_REPOSITORY=/x\nCOFFER_COPY_TO_X_PASSWORD=p\nCOFFER_COPY_TO_X_FROM=y\n"
		  "COFFER_COPY_TO_Y_REPOSITORY=/y\nCOFFER_COPY_TO_Y_PASSWORD=p\nCOFFER_COPY_TO_Y_FROM=x\n", "circle" },
		{ "COFFER_COPY_TO_X_REPOSITORY=/x\nCOFFER_COPY_TO_X_PASSWORD=p\nCOFFER_COPY_TO_X_AWS_ACCESS_KEY_ID=k\n",
		  "COFFER_COPY_TO_X_AWS_SECRET_ACCESS_KEY is not" },
		{ "COFFER_COPY_TO_X_REPOSITORY=/x\nCOFFER_COPY_TO_X_PASSWORD=p\nCOFFER_COPY_TO_X_SCHEDULE=every day\n",
		  "COFFER_COPY_TO_X_SCHEDULE" },
		{ "COFFER_COPY_TO_X_REPOSITORY=ftp://x\nCOFFER_COPY_TO_X_PASSWORD=p\n", "COFFER_COPY_TO_X_REPOSITORY" },
		{ "COFFER_COPY_TO__REPOSITORY=/x\n", "unknown key COFFER_COPY_TO__REPOSITORY" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = load_copies_text(&c, bad[i].text);
		if (r != CF_EINVAL)
			fail_msg("case %zu: %d, want CF_EINVAL", i, r);
		if (!strstr(cf_errmsg(r), bad[i].msg))
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, cf_errmsg(r), bad[i].msg);
		assert_null(strstr(cf_errmsg(r), "=p"));
	}

	/* print-config: the target's keys, its secrets as (set) */
	snprintf(text, sizeof(text), "COFFER_COPY_TO_X_REPOSITORY=/x\nCOFFER_COPY_TO_X_PASSWORD=hunter3pw\n"
				     "COFFER_COPY_TO_X_AWS_ACCESS_KEY_ID=AKIAX\nCOFFER_COPY_TO_X_AWS_SECRET_ACCESS_KEY=s3cr3tval\n");
	assert_int_equal(load_copies_text(&c, text), CF_OK);
	char path[256];
	snprintf(path, sizeof(path), "%s/copies.env", dir);
	struct env e = { { "COFFER_CONFIG_FILE", path, NULL } };
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	cf_agent_config_print(&c, env_get, &e, f);
	fclose(f);
	assert_null(strstr(out, "hunter3pw"));
	assert_null(strstr(out, "s3cr3tval"));
	assert_non_null(strstr(out, "COFFER_COPY_TO_X_PASSWORD=(set) # file"));
	assert_non_null(strstr(out, "COFFER_COPY_TO_X_REPOSITORY=/x # file"));
	free(out);
	cf_agent_config_release(&c);
}

/* The printed configuration never shows a secret. */
static void test_print_hides_secrets(void **state)
{
	(void)state;
	struct env e = { { BASE, "COFFER_PASSWORD", "hunter2", "COFFER_WEBHOOK_URL", "http://x/",
			   "COFFER_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			   "AWS_SECRET_ACCESS_KEY", "AKIAsecretvalue", NULL } };
	struct cf_agent_config c = CF_AGENT_CONFIG_INIT;
	assert_int_equal(load(&c, &e), CF_OK);
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);
	cf_agent_config_print(&c, env_get, &e, f);
	fclose(f);
	assert_null(strstr(text, "hunter2"));
	assert_null(strstr(text, "MfKQ9r8G"));
	assert_null(strstr(text, "AKIAsecretvalue"));
	assert_non_null(strstr(text, "COFFER_WEBHOOK_SECRET=(set)"));
	assert_non_null(strstr(text, "COFFER_SCHEDULE=4 5 * * * # default"));
	free(text);
	cf_agent_config_release(&c);
}

/* doc/agent.md has a row for every key of the table. */
static void test_doc_lists_every_key(void **state)
{
	(void)state;
	const char *src = getenv("COFFER_SOURCE_DIR");
	char path[512];
	if (!src)
		skip();
	snprintf(path, sizeof(path), "%s/doc/agent.md", src);
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s", path);
	static char doc[1 << 17];
	size_t n = fread(doc, 1, sizeof(doc) - 1, f);
	fclose(f);
	doc[n] = 0;
	const char *key;
	for (size_t i = 0; (key = cf_agent_config_key(i, NULL)); i++) {
		char row[128];
		snprintf(row, sizeof(row), "| `%s` |", key);
		if (!strstr(doc, row))
			fail_msg("doc/agent.md has no table row for %s", key);
	}
}

static time_t utc(const char *s)
{
	struct tm tm = { 0 };
	assert_int_equal(sscanf(s, "%d-%d-%d %d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
				&tm.tm_min), 5);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return timegm(&tm);
}

static void test_ticks_between(void **state)
{
	(void)state;
	struct cf_cron c;
	unsigned n;
	assert_int_equal(cf_cron_parse(&c, "*/15 * * * *"), CF_OK);
	/* a job that started at the 10:00 tick and ran until 10:47 missed three */
	assert_int_equal(cf_agent_ticks_between(&c, NULL, utc("2026-01-05 10:00"), utc("2026-01-05 10:47"), &n), CF_OK);
	assert_int_equal(n, 3);
	/* the end is included: finishing exactly at 10:45 missed 10:45 too */
	assert_int_equal(cf_agent_ticks_between(&c, NULL, utc("2026-01-05 10:00"), utc("2026-01-05 10:45"), &n), CF_OK);
	assert_int_equal(n, 3);
	assert_int_equal(cf_agent_ticks_between(&c, NULL, utc("2026-01-05 10:00"), utc("2026-01-05 10:14"), &n), CF_OK);
	assert_int_equal(n, 0);
	/* the daily default at 05:04 Berlin time: a 26-hour job missed one */
	assert_int_equal(cf_cron_parse(&c, "4 5 * * *"), CF_OK);
	assert_int_equal(cf_agent_ticks_between(&c, "Europe/Berlin", utc("2026-03-28 04:04"),
						utc("2026-03-29 06:04"), &n), CF_OK);
	assert_int_equal(n, 1);
}

static void test_print_schedule(void **state)
{
	(void)state;
	struct env e = { { "COFFER_SCHEDULE", "4 5 * * *", "TZ", "Europe/Berlin", NULL } };
	struct cf_agent_config c = CF_AGENT_CONFIG_INIT;
	assert_int_equal(cf_agent_config_load_schedule(&c, env_get, &e), CF_OK);
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);
	/* across the spring-forward night of 2026-03-29 */
	assert_int_equal(cf_agent_print_schedule(&c, utc("2026-03-27 12:00"), 3, f), CF_OK);
	fclose(f);
	assert_string_equal(text, "2026-03-28 05:04:00 CET (+0100)\n"
				  "2026-03-29 05:04:00 CEST (+0200)\n"
				  "2026-03-30 05:04:00 CEST (+0200)\n");
	free(text);
	cf_agent_config_release(&c);
}

static void test_healthcheck(void **state)
{
	(void)state;
	char sd[256], path[300], why[512];
	snprintf(sd, sizeof(sd), "%s/state", dir);
	mkdir(sd, 0755);
	snprintf(path, sizeof(path), "%s/state.json", sd);
	time_t now = utc("2026-06-01 12:00");

	unlink(path);
	assert_int_equal(cf_agent_healthcheck(sd, now, why, sizeof(why)), 1);
	assert_non_null(strstr(why, "no readable state file"));

	/* started, no job yet, next one in the future: healthy */
	write_file(path, "{\"agent\":{\"state\":\"waiting\",\"next_run_unix\":1780315440}}");
	assert_int_equal(cf_agent_healthcheck(sd, now, why, sizeof(why)), 0);

	/* the last job failed */
	write_file(path, "{\"agent\":{\"state\":\"waiting\",\"next_run_unix\":1780315440},"
			 "\"last_job\":{\"status\":\"failed\",\"exit_code\":1,\"error\":\"disk full\"}}");
	assert_int_equal(cf_agent_healthcheck(sd, now, why, sizeof(why)), 1);
	assert_non_null(strstr(why, "disk full"));

	/* succeeded, but the next job is hours overdue: stuck */
	write_file(path, "{\"agent\":{\"state\":\"waiting\",\"next_run_unix\":1780290000},"
			 "\"last_job\":{\"status\":\"success\",\"exit_code\":0}}");
	assert_int_equal(cf_agent_healthcheck(sd, now, why, sizeof(why)), 1);
	assert_non_null(strstr(why, "overdue"));
	assert_int_equal(cf_agent_healthcheck(sd, 1780290000 + 60, why, sizeof(why)), 0);
}

/* The metrics' repository label: a URL's userinfo and query left out. */
static void test_repository_label(void **state)
{
	(void)state;
	char out[256];
	cf_metrics_repository_label("s3:https://AKID:secretkey@s3.example:9000/bucket/pre?X-Amz-Security-Token=tok", out,
				    sizeof(out));
	assert_string_equal(out, "s3:https://s3.example:9000/bucket/pre");
	cf_metrics_repository_label("/srv/backups", out, sizeof(out));
	assert_string_equal(out, "/srv/backups");
	cf_metrics_repository_label("s3://bucket/prefix", out, sizeof(out));
	assert_string_equal(out, "s3://bucket/prefix");
	/* an '@' in the path is not userinfo */
	cf_metrics_repository_label("s3:https://s3.example/b/me@home", out, sizeof(out));
	assert_string_equal(out, "s3:https://s3.example/b/me@home");
	cf_metrics_repository_label("s3:https://s3.example/bucket", out, 12);
	assert_string_equal(out, "s3:https://");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_repository_label),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_docker_hosts),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_required),
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_print_hides_secrets),
		cmocka_unit_test(test_copy_targets),
		cmocka_unit_test(test_doc_lists_every_key),
		cmocka_unit_test(test_ticks_between),
		cmocka_unit_test(test_print_schedule),
		cmocka_unit_test(test_healthcheck),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
