/* settings.h: tarnfs.conf settings described by tables (Redis-style): one
 * row per setting names its type, the field it fills (an offset into the
 * struct the table describes), its range and how to say it.  Generic code
 * parses a value by its row's type (sizes and durations by util/units),
 * checks the range and words the message, for tarnfsd and the tarnfs tool
 * alike.  Units: sizes in bytes (uint64_t), durations in ms (unsigned). */
#ifndef TARNFS_SETTINGS_H
#define TARNFS_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum setting_type {
    SET_STRING,     /* char * (or const char *), owned: strdup'ed, freed;
                       the row's parse, if any, only checks the value */
    SET_BOOL,       /* bool: yes/no, true/false, on/off, 1/0 */
    SET_UINT,       /* unsigned, decimal, in [min, max] */
    SET_PERCENT,    /* unsigned, a percentage in [min, max] */
    SET_PORT,       /* int, a port 0..65535 */
    SET_SIZE,       /* uint64_t bytes ("64M", units_size), in [min, max] */
    SET_DURATION,   /* unsigned ms ("90s", units_duration_ms), in [min, max]
                       (max 0: 4e9 ms, about 46 days) */
    SET_CUSTOM,     /* the row's parse function */
    SET_TABLE,      /* not a setting: the rows of table, for a struct
                       embedded at offset */
};

/* Row flags. */
enum {
    SETTING_SECRET = 1,     /* never echoed in a message; wiped when freed */
    SETTING_ZERO_MAX = 2,   /* 0 is stored as the field's largest value
                               ("never", "off"), outside the range check */
};

struct setting;
struct setting_table {
    const struct setting *rows;
    size_t n;
};

/* A SET_CUSTOM row's parser: value into the struct at base (the struct
 * the row's table fills); a SET_STRING row's checks it only.  Returns 0, ENOMEM, or EINVAL with what the
 * value should be in why ("none, whole or auto"; the generic code words
 * the rest of the message). */
typedef int (*setting_parse_fn)(void *base, const char *value, char *why,
                                size_t whylen);

struct setting {
    const char *name;
    enum setting_type type;
    size_t offset;                  /* of the field (or embedded struct) */
    uint64_t min, max;              /* max 0: the type's largest */
    unsigned flags;
    setting_parse_fn parse;         /* SET_CUSTOM; SET_STRING's check */
    const struct setting_table *table;  /* SET_TABLE */
};

/* The row named name in t (embedded tables searched too), or NULL;
 * *offset (may be NULL) gets the field's offset from t's struct. */
const struct setting *settings_find(const struct setting_table *t, const char *name,
                                    size_t *offset);

/* Set key to value in the struct at base that t describes.  Errors:
 * EINVAL (why: "unknown setting 'KEY'", or "bad value 'VALUE' for KEY:
 * must be between X and Y" and the like; a secret's value never shown),
 * ENOMEM. */
int settings_apply(const struct setting_table *t, void *base, const char *key,
                   const char *value, char *why, size_t whylen);

/* Call fn with every row of t that is a setting (embedded tables
 * included), in table order. */
void settings_each(const struct setting_table *t,
                   void (*fn)(void *arg, const struct setting *row), void *arg);

/* Free the strings of base's SET_STRING fields (wiping secrets first) and
 * set them to NULL.  Never fails. */
void settings_free(const struct setting_table *t, void *base);

/* Read path's lines for the settings t knows into base, skipping other
 * settings, export lines and malformed lines (another program's to
 * report).  Errors: EINVAL (a bad value for one of t's settings: err says
 * "PATH:LINE: why" for the first), the errno of opening path ("PATH:
 * reason"), ENOMEM. */
int settings_read_known(const char *path, const struct setting_table *t, void *base,
                        char *err, size_t errlen);

#endif
