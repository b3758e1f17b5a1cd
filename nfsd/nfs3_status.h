/* nfs3_status.h: the one place where errno values become NFSv3 status codes. */
#ifndef TARNFS_NFSD_NFS3_STATUS_H
#define TARNFS_NFSD_NFS3_STATUS_H

#include "nfsd/nfs3_prot.h"

/* Map a vfs/errno error (0 = ok) to nfsstat3; unknown ones give SERVERFAULT
 * or IO. */
nfsstat3 nfs3_status_from_errno(int err);

#endif
