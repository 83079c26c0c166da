/*
 * cmd_agent.c - `coffer agent` and `coffer healthcheck`: configuration from
 * the environment (agent/config.h), then the loop or one job (agent/daemon.h).
 */
#include "cli/cli.h"
#include "agent/config.h"
#include "agent/daemon.h"
#include "common/error.h"
#include "common/util.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static int refuse(int rc)
{
	fprintf(stderr, "coffer agent: refusing to start: %s\n", cf_errmsg(rc));
	return EXIT_ERR;
}

int cmd_agent(struct cli *c)
{
	struct cf_agent_config cfg = CF_AGENT_CONFIG_INIT;
	int rc, code;

	if (c->nargs > 0) {
		fprintf(stderr, "coffer agent: unexpected argument '%s' (the agent is configured by "
				"COFFER_* variables, see doc/agent.md)\n", c->args[0]);
		return EXIT_ERR;
	}
	if (c->agent_healthcheck) {
		char why[1024];
		if ((rc = cf_agent_config_load_schedule(&cfg, NULL, NULL)))
			return refuse(rc);
		if (c->parse_only) {
			cf_agent_config_done(&cfg);
			parse_only_done(c);
		}
		code = cf_agent_healthcheck(cfg.state_dir, time(NULL), why, sizeof(why));
		printf("%s: %s\n", code ? "unhealthy" : "healthy", why);
		cf_agent_config_done(&cfg);
		return code;
	}
	if (c->agent_print_schedule || c->agent_print_config) {
		if ((rc = cf_agent_config_load_schedule(&cfg, NULL, NULL)))
			return refuse(rc);
		if (c->parse_only) {
			cf_agent_config_done(&cfg);
			parse_only_done(c);
		}
		if (c->agent_print_config)
			cf_agent_config_print(&cfg, NULL, NULL, stdout);
		if (c->agent_print_schedule &&
		    (rc = cf_agent_print_schedule(&cfg, time(NULL), c->agent_print_schedule, stdout))) {
			cf_agent_config_done(&cfg);
			return fail(rc);
		}
		cf_agent_config_done(&cfg);
		return EXIT_OK;
	}
	if (c->agent_once && c->agent_run) {
		fprintf(stderr, "coffer agent: --once and --run %s: give one of them\n", c->agent_run);
		return EXIT_ERR;
	}
	if (c->agent_run && strcmp(c->agent_run, "backup") && strcmp(c->agent_run, "drill") &&
	    strncmp(c->agent_run, "copy:", 5)) {
		fprintf(stderr, "coffer agent: --run %s: not something to run (backup, copy:NAME, drill)\n",
			c->agent_run);
		return EXIT_ERR;
	}
	if ((rc = cf_agent_config_load(&cfg, NULL, NULL)))
		return refuse(rc);
	if (c->parse_only) {
		cf_agent_config_done(&cfg);
		parse_only_done(c);
	}
	if (!c->quiet && !c->verbose)
		cf_log_level = cfg.log_level;
	cf_agent_install_signals();
	if ((c->agent_once || c->agent_run) && cfg.nsqlite_replicate)
		cf_warn("coffer agent: COFFER_SQLITE_REPLICATE is followed by the daemon (coffer agent) only: "
			"--once/--run does not replicate (COFFER_SQLITE copies go into the snapshot as always)");
	if (c->agent_once) {
		code = cf_agent_run_once(&cfg);
	} else if (c->agent_run) {
		code = cf_agent_run_named(&cfg, c->agent_run);
	} else {
		code = cf_agent_loop(&cfg);
	}
	cf_agent_config_done(&cfg);
	return code;
}
