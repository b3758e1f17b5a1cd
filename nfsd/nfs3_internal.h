/* nfs3_internal.h: what nfs3_procs.c and nfs3_readdir.c share: the reply's
 * attribute and handle helpers, the permission check, and the two listing
 * procedures for the descriptor table. */
#ifndef TARNFS_NFSD_NFS3_INTERNAL_H
#define TARNFS_NFSD_NFS3_INTERNAL_H

#include "nfsd/nfs3_prot.h"
#include "nfsd/nfsd.h"

/* Access bits, as in a mode's rwx triple. */
enum { MAY_X = 1, MAY_W = 2, MAY_R = 4 };

/* post_op_attr from a (NULL: no attributes follow). */
void nfs3_post_attr_set(post_op_attr *p, const struct vfs_attr *a);
/* post_op_fh3 for id, encoded in c's arena (no handle follows if that
 * fails). */
void nfs3_post_fh_set(struct rpc_ctx *c, post_op_fh3 *p, const struct vfs_id *id);
/* 0 if c's credentials have every bit of want (MAY_*) on a node with
 * attributes a, else EACCES. */
int nfs3_perm_need(struct rpc_ctx *c, const struct vfs_attr *a, unsigned want);

/* The READDIR and READDIRPLUS procedures (nfs3_readdir.c). */
void nfs3_readdir(struct rpc_ctx *c, void *args, void *res);
void nfs3_readdirplus(struct rpc_ctx *c, void *args, void *res);

#endif
