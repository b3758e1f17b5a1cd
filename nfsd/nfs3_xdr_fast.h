/* nfs3_xdr_fast.h: hand-unrolled XDR encoders for the replies whose
 * per-field encoding costs most (nfs3_xdr_fast.c). */
#ifndef TARNFS_NFS3_XDR_FAST_H
#define TARNFS_NFS3_XDR_FAST_H

#include "nfsd/nfs3_prot.h"

/* xdr_READDIRPLUS3res, byte for byte, with each entry of an NFS3_OK reply
 * written through one xdr_inline window when the stream gives one (an
 * aligned memory stream with room); decoding, errors and other streams go
 * to rpcgen's code.  Returns FALSE as rpcgen's does (no room, a name or
 * handle over its bound). */
bool_t nfsd_xdr_READDIRPLUS3res(XDR *x, READDIRPLUS3res *r);

#endif
