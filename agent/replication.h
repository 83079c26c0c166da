/*
 * replication.h - the agent's continuous SQLite replication
 * (COFFER_SQLITE_REPLICATE): a thread beside the schedule, what it reports
 * (replication.json for the healthcheck, metrics, webhook) and its
 * retention.  replication.c has the model.
 */
#ifndef CF_AGENT_REPLICATION_H
#define CF_AGENT_REPLICATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "agent/config.h"
#include "repo/repo.h"

/* Start replicating c's COFFER_SQLITE_REPLICATE databases in a thread of
 * its own (nothing when there are none, or when it runs already).  c must
 * stay valid until agent_repl_stop().  CF_OK, or why the thread could not
 * start (the state directory, memory). */
int agent_repl_start(const struct cf_agent_config *c);
/* Stop the thread: what it read is stored (one attempt), its state file
 * says "stopped".  A no-op when not running. */
void agent_repl_stop(void);
/* After a scheduled backup wrote a snapshot: every replicated database
 * starts a new generation at its next interval. */
void agent_repl_new_base(void);
/* The healthcheck's part: true with the reason in why when a replicated
 * database is not followed, lags more than COFFER_SQLITE_MAX_LAG, or the
 * replicator stopped reporting while the agent runs.  False when all is
 * well or nothing is replicated. */
bool agent_repl_unhealthy(const char *state_dir, time_t now, char *why, size_t whylen);
/* Retention (the job's, exclusive lock held on r): remove the generations
 * of c's replicated databases whose restorable range ends before the cut
 * (COFFER_SQLITE_RETENTION: the oldest snapshot of this host kept, or now
 * minus the duration) with their base snapshots.  Counts what it removed.
 * CF_OK or the store's error. */
int agent_repl_retention(const struct cf_agent_config *c, struct cf_repo *r, uint64_t *gens_removed,
			 uint64_t *segments_removed);

#endif
