/* convert.h: `tarnfs convert`, which turns the sequencing-run directories of
 * a NAS tree into one tarball each, in S3, in a NAS directory or in place.
 * The pieces (discovery, tree scan, tar writer, targets, verify) are in
 * convert_internal.h; this is the only entry point the tool table needs. */
#ifndef TARNFS_CONVERT_H
#define TARNFS_CONVERT_H

/* Run `tarnfs convert` with argv[0] = "convert".  Returns the exit code:
 * 0 every run converted (or already up to date), 1 some run failed or the
 * command was interrupted, 2 bad usage (including a name collision under
 * --naming flat, found before anything is written). */
int cmd_convert(int argc, char **argv);

#endif
