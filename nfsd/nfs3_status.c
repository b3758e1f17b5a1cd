/* nfs3_status.c: errno -> nfsstat3, in one table (RFC 1813 section 2.6). */
#include "nfsd/nfs3_status.h"

#include <errno.h>

nfsstat3 nfs3_status_from_errno(int err)
{
    switch (err) {
    case 0:            return NFS3_OK;
    case EPERM:        return NFS3ERR_PERM;
    case ENOENT:       return NFS3ERR_NOENT;
    case EIO:          return NFS3ERR_IO;
    case ENXIO:        return NFS3ERR_NXIO;
    case EACCES:       return NFS3ERR_ACCES;
    case EEXIST:       return NFS3ERR_EXIST;
    case EXDEV:        return NFS3ERR_XDEV;
    case ENODEV:       return NFS3ERR_NODEV;
    case ENOTDIR:      return NFS3ERR_NOTDIR;
    case EISDIR:       return NFS3ERR_ISDIR;
    case EINVAL:       return NFS3ERR_INVAL;
    case EFBIG:        return NFS3ERR_FBIG;
    case ENOSPC:       return NFS3ERR_NOSPC;
    case EROFS:        return NFS3ERR_ROFS;
    case EMLINK:       return NFS3ERR_MLINK;
    case ENAMETOOLONG: return NFS3ERR_NAMETOOLONG;
    case ENOTEMPTY:    return NFS3ERR_NOTEMPTY;
    case EDQUOT:       return NFS3ERR_DQUOT;
    case ESTALE:       return NFS3ERR_STALE;
    case EBADMSG:      return NFS3ERR_BADHANDLE;
    case ENOTSUP:      return NFS3ERR_NOTSUPP;
    case EAGAIN:       return NFS3ERR_JUKEBOX;  /* a fetch is still running: retry */
    case ENOMEM:       return NFS3ERR_SERVERFAULT;
    case ELOOP:        return NFS3ERR_INVAL;
    default:           return NFS3ERR_IO;
    }
}
