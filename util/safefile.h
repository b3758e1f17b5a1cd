/* safefile.h: atomic small-file writes that never follow a symlink, for every
 * file tarnfs keeps in a directory someone else may be able to write (the
 * cache: marks, stats, request answers, name catalog, markers, keys). */
#ifndef TARNFS_SAFEFILE_H
#define TARNFS_SAFEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Replace path with exactly len bytes of buf, atomically: a new temp file
 * next to it ("<path>.tmp.<random>", created with O_CREAT|O_EXCL|
 * O_NOFOLLOW, so a file or symlink planted there is never opened), written,
 * fsynced if sync, then renamed over path (which replaces a symlink at path
 * itself, never its target).  Readers see the old or the new content.  On
 * failure nothing is left behind.  Errors: positive errno from open, write,
 * fsync or rename (EIO for a short write). */
int safe_write_file(const char *path, const void *buf, size_t len,
                    mode_t mode, bool sync);

/* Open path for reading without following a symlink at its last component
 * (O_NOFOLLOW).  Returns a descriptor or -1 with errno set (ELOOP for a
 * symlink). */
int safe_open_read(const char *path);

#endif
