/* nlm.h: the NLM v4 service of tarnfsd (doc/design.md, "File locking
 * (NLM)"): starting and stopping its lock table and callback sender, and
 * the grace period after a restart. */
#ifndef TARNFS_NFSD_NLM_H
#define TARNFS_NFSD_NLM_H

#include <stdbool.h>

#include "nfsd/nfsd.h"

/* Create srv's lock table and start the callback sender; for grace_ms
 * from now (0: none) new locks are refused and reclaims accepted.  With
 * statd, each peer address holding locks is monitored with the local
 * rpc.statd.  Errors: ENOMEM, errno of pthread_create. */
int nlm_start(struct nfsd *srv, unsigned grace_ms, bool statd);

/* Stop the callback sender and free every lock (shutdown). */
void nlm_stop(struct nfsd *srv);

/* True while the grace period after the start lasts. */
bool nlm_in_grace(const struct nfsd *srv);

#endif
