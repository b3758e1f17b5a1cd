/* metrics.h: tarnfsd's Prometheus metrics (metrics_listen in tarnfs.conf).
 * Workers count each call into per-thread shards of relaxed atomic
 * counters (no lock, no shared cache line on the request path); a scrape
 * of GET /metrics, served by libmicrohttpd on its own thread, sums the
 * shards and adds the vfs and transport figures.  doc/design.md, "Metrics". */
#ifndef TARNFS_NFSD_METRICS_H
#define TARNFS_NFSD_METRICS_H

#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "nfsd/rpc_server.h"
#include "vfs/vfs.h"

struct nfsd_metrics;

/* Which program a call was for (metrics_call's prog). */
enum { METRICS_NFS = 0, METRICS_MOUNT = 1 };

/* New zeroed counters (nothing listens yet).  Errors: ENOMEM. */
int metrics_new(struct nfsd_metrics **out);

/* Count one answered call (any thread, lock-free): prog METRICS_NFS or
 * METRICS_MOUNT, its procedure number, its status (nfsstat3 or mountstat3;
 * -1 for a procedure without one), how long it took, and the file bytes
 * it read and wrote.  Unknown procedures are ignored. */
void metrics_call(struct nfsd_metrics *m, int prog, uint32_t proc, int status,
                  uint64_t ns, uint64_t read_bytes, uint64_t written_bytes);

/* Write the text exposition format (version 0.0.4) of m, of v's stats
 * (v may be NULL) and of rs's (rs may be NULL) to f. */
void metrics_render(struct nfsd_metrics *m, vfs *v, struct rpc_server *rs, FILE *f);

/* Serve GET /metrics on listen (a metrics_listen value, as
 * nfsd_parse_sockaddr) from libmicrohttpd's
 * own thread, rendering m, v and rs (which must outlive metrics_stop).
 * Errors: EINVAL (bad address), EADDRINUSE or another errno of the bind
 * (logged). */
int metrics_serve(struct nfsd_metrics *m, const char *listen, vfs *v,
                  struct rpc_server *rs);

/* The port metrics_serve bound (0 when not serving). */
int metrics_port(const struct nfsd_metrics *m);

/* Stop serving (a scrape in progress finishes first).  m stays usable. */
void metrics_stop(struct nfsd_metrics *m);

/* metrics_stop, then free m (NULL is fine). */
void metrics_free(struct nfsd_metrics *m);

struct listcache;
/* Render lc's usage too (set before metrics_serve; NULL: none). */
void metrics_set_listcache(struct nfsd_metrics *m, struct listcache *lc);

#endif
