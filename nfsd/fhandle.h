/* fhandle.h: NFS file handles: a vfs_id wrapped with a version, an export id
 * and a 128-bit SipHash-2-4 MAC, so handles survive restarts and cannot be forged.
 *
 * Layout (length is a multiple of 4, at most 64 bytes):
 *   [0] version (FH_VERSION)   [1] flags (0)   [2] export id   [3] vfs_id length
 *   [4 .. 4+len) vfs_id bytes, zero padded to a multiple of 4
 *   last FH_MAC_LEN bytes: SipHash-2-4(key[0..16), everything before) then
 *   SipHash-2-4(key[16..32), everything before), each little-endian.
 * Version 1 handles carried a truncated HMAC-SHA256: they decode as ESTALE. */
#ifndef TARNFS_NFSD_FHANDLE_H
#define TARNFS_NFSD_FHANDLE_H

#include <stddef.h>
#include <stdint.h>

#include "vfs/vfs.h"

#define FH_VERSION  2
#define FH_MAC_LEN  16
#define FH_MAX      64
#define FH_KEY_LEN  32

struct fh_key { uint8_t k[FH_KEY_LEN]; };

/* Load DIR/handle.key, creating it (0600, random) when missing.  Errors:
 * errno of open/read/write, EINVAL (file of the wrong size). */
int fh_key_load(const char *dir, struct fh_key *key);

/* SipHash-2-4 of the n bytes at p under key (the handle MAC's building
 * block, public for its reference test vectors).  No errors. */
uint64_t fh_siphash24(const uint8_t key[16], const uint8_t *p, size_t n);

/* Wrap id for export_id into out (FH_MAX bytes); returns the length. */
size_t fh_encode(const struct fh_key *key, uint8_t export_id,
                 const struct vfs_id *id, uint8_t out[FH_MAX]);

/* A bounded memory of handles made (65,536 MACs, direct mapped, 64 locked
 * shards; about 4.5 MiB): the same id in the same export gets the same
 * handle every time, and a READDIRPLUS of a directory listed before makes
 * them again for every entry, where the two SipHash-2-4 passes were 870
 * instructions of about 1,400 per entry (doc/performance.md).  It keeps
 * its own copy of the key, so it never gives a MAC made under another. */
struct fh_cache;

/* A cache for handles made under key.  Errors: ENOMEM. */
int fh_cache_new(const struct fh_key *key, struct fh_cache **out);

/* Free fc (NULL: nothing). */
void fh_cache_free(struct fh_cache *fc);

/* fh_encode under fc's key, the MAC from fc when it has it: the same bytes
 * as fh_encode always. */
size_t fh_cache_encode(struct fh_cache *fc, uint8_t export_id,
                       const struct vfs_id *id, uint8_t out[FH_MAX]);

/* Unwrap a handle.  Errors: EBADMSG (malformed: size, version, length),
 * ESTALE (well formed but the MAC does not match: another key or forged; or
 * a version 1 handle from before the SipHash MAC). */
int fh_decode(const struct fh_key *key, const uint8_t *fh, size_t len,
              uint8_t *export_id, struct vfs_id *id);

#endif
