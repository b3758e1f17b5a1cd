/* fhandle.h: NFS file handles: a vfs_id wrapped with a version, an export id
 * and a truncated HMAC-SHA256, so handles survive restarts and cannot be forged.
 *
 * Layout (length is a multiple of 4, at most 64 bytes):
 *   [0] version (FH_VERSION)   [1] flags (0)   [2] export id   [3] vfs_id length
 *   [4 .. 4+len) vfs_id bytes, zero padded to a multiple of 4
 *   last FH_MAC_LEN bytes: HMAC-SHA256(key, everything before), truncated. */
#ifndef TARNFS_NFSD_FHANDLE_H
#define TARNFS_NFSD_FHANDLE_H

#include <stddef.h>
#include <stdint.h>

#include "vfs/vfs.h"

#define FH_VERSION  1
#define FH_MAC_LEN  16
#define FH_MAX      64
#define FH_KEY_LEN  32

struct fh_key { uint8_t k[FH_KEY_LEN]; };

/* Load DIR/handle.key, creating it (0600, random) when missing.  Errors:
 * errno of open/read/write, EINVAL (file of the wrong size). */
int fh_key_load(const char *dir, struct fh_key *key);

/* Wrap id for export_id into out (FH_MAX bytes); returns the length. */
size_t fh_encode(const struct fh_key *key, uint8_t export_id,
                 const struct vfs_id *id, uint8_t out[FH_MAX]);

/* Unwrap a handle.  Errors: EBADMSG (malformed: size, version, length),
 * ESTALE (well formed but the MAC does not match: another key or forged). */
int fh_decode(const struct fh_key *key, const uint8_t *fh, size_t len,
              uint8_t *export_id, struct vfs_id *id);

#endif
