/* s3xml.c: reads S3's XML replies (ListObjectsV2, errors, multipart upload
 * ids and listings) with libxml2, ignoring namespaces. */
#include "fetch/s3xml.h"

#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init(void)
{
    xmlInitParser();
}

static xmlDocPtr parse(const char *xml, size_t len)
{
    pthread_once(&xml_once, xml_init);
    if (!xml || len == 0 || len > (size_t)1 << 30)
        return NULL;
    return xmlReadMemory(xml, (int)len, "s3.xml", NULL,
                         XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

static bool named(xmlNodePtr n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static xmlNodePtr child(xmlNodePtr parent, const char *name)
{
    for (xmlNodePtr c = parent->children; c; c = c->next)
        if (named(c, name))
            return c;
    return NULL;
}

/* Copy the text of node into out; ENAMETOOLONG if it does not fit. */
static int text_of(xmlNodePtr node, char *out, size_t outlen)
{
    xmlChar *t = node ? xmlNodeGetContent(node) : NULL;
    int rc = 0;
    if (!t) {
        out[0] = '\0';
        return 0;
    }
    if (strlen((const char *)t) >= outlen)
        rc = ENAMETOOLONG;
    snprintf(out, outlen, "%s", (const char *)t);
    xmlFree(t);
    return rc;
}

void s3xml_unquote(const char *s, char *out, size_t outlen)
{
    size_t n = strlen(s);
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s++;
        n -= 2;
    }
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

int s3xml_parse_time(const char *s, struct timespec *ts)
{
    struct tm tm;
    const char *end;
    memset(&tm, 0, sizeof tm);
    ts->tv_nsec = 0;
    if ((end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) != NULL) {
        if (*end == '.') {
            long frac = 0, scale = 100000000;
            for (end++; *end >= '0' && *end <= '9'; end++, scale /= 10)
                if (scale)
                    frac += (*end - '0') * scale;
            ts->tv_nsec = frac;
        }
    } else if (!strptime(s, "%a, %d %b %Y %H:%M:%S", &tm)) {
        return EINVAL;
    }
    ts->tv_sec = timegm(&tm);
    return 0;
}

static int page_add(struct s3_list_page *page, const struct fetch_objinfo *oi)
{
    if (page->n == page->cap) {
        size_t cap = page->cap ? page->cap * 2 : 256;
        void *p = realloc(page->items, cap * sizeof *page->items);
        if (!p)
            return ENOMEM;
        page->items = p;
        page->cap = cap;
    }
    page->items[page->n++] = *oi;
    return 0;
}

static int compare_info(const void *a, const void *b)
{
    return strcmp(((const struct fetch_objinfo *)a)->key, ((const struct fetch_objinfo *)b)->key);
}

/* Fill oi->key from text minus strip_prefix; false if it is outside it. */
static bool set_key(struct fetch_objinfo *oi, xmlNodePtr node, const char *strip_prefix)
{
    char full[sizeof oi->key * 2];
    if (!node || text_of(node, full, sizeof full) != 0)
        return false;
    size_t sp = strlen(strip_prefix);
    if (strncmp(full, strip_prefix, sp) != 0 || strlen(full + sp) >= sizeof oi->key)
        return false;
    snprintf(oi->key, sizeof oi->key, "%s", full + sp);
    return oi->key[0] != '\0';
}

int s3xml_parse_list(const char *xml, size_t len, const char *strip_prefix,
                     struct s3_list_page *page)
{
    xmlDocPtr doc = parse(xml, len);
    xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
    int rc = 0;

    page->n = 0;
    page->truncated = false;
    page->next_token[0] = '\0';
    if (!root || !named(root, "ListBucketResult")) {
        rc = EPROTO;
        goto out;
    }
    for (xmlNodePtr c = root->children; c && !rc; c = c->next) {
        struct fetch_objinfo oi;
        char buf[256];
        memset(&oi, 0, sizeof oi);
        if (named(c, "IsTruncated")) {
            text_of(c, buf, sizeof buf);
            page->truncated = strcmp(buf, "true") == 0;
        } else if (named(c, "NextContinuationToken")) {
            rc = text_of(c, page->next_token, sizeof page->next_token);
        } else if (named(c, "Contents")) {
            if (!set_key(&oi, child(c, "Key"), strip_prefix))
                continue;
            text_of(child(c, "Size"), buf, sizeof buf);
            oi.size = strtoull(buf, NULL, 10);
            text_of(child(c, "LastModified"), buf, sizeof buf);
            s3xml_parse_time(buf, &oi.mtime);
            text_of(child(c, "ETag"), buf, sizeof buf);
            s3xml_unquote(buf, oi.version, sizeof oi.version);
            rc = page_add(page, &oi);
        } else if (named(c, "CommonPrefixes")) {
            if (!set_key(&oi, child(c, "Prefix"), strip_prefix))
                continue;
            oi.is_prefix = true;
            rc = page_add(page, &oi);
        }
    }
    if (rc == 0 && page->truncated && !page->next_token[0])
        rc = EPROTO;        /* truncated without a way to go on */
    /* Objects and prefixes come in two runs; callers want one key order. */
    if (rc == 0 && page->n > 1)
        qsort(page->items, page->n, sizeof *page->items, compare_info);
out:
    if (doc)
        xmlFreeDoc(doc);
    return rc;
}

void s3xml_list_page_free(struct s3_list_page *page)
{
    free(page->items);
    page->items = NULL;
    page->n = page->cap = 0;
}

int s3xml_parse_error(const char *xml, size_t len, char *code, size_t codelen,
                      char *msg, size_t msglen)
{
    xmlDocPtr doc = parse(xml, len);
    xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
    int rc = EPROTO;
    code[0] = msg[0] = '\0';
    if (root && named(root, "Error")) {
        text_of(child(root, "Code"), code, codelen);
        text_of(child(root, "Message"), msg, msglen);
        rc = 0;
    }
    if (doc)
        xmlFreeDoc(doc);
    return rc;
}

static xmlNodePtr find_any(xmlNodePtr n, const char *name)
{
    for (; n; n = n->next) {
        if (named(n, name))
            return n;
        xmlNodePtr found = find_any(n->children, name);
        if (found)
            return found;
    }
    return NULL;
}

int s3xml_find_text(const char *xml, size_t len, const char *name, char *out, size_t outlen)
{
    xmlDocPtr doc = parse(xml, len);
    int rc;
    if (!doc)
        return EPROTO;
    xmlNodePtr n = find_any(xmlDocGetRootElement(doc), name);
    rc = n ? text_of(n, out, outlen) : ENOENT;
    xmlFreeDoc(doc);
    return rc;
}

int s3xml_parse_uploads(const char *xml, size_t len, s3xml_upload_cb cb, void *arg,
                        bool *truncated, char *next_key, size_t next_keylen,
                        char *next_upload, size_t next_uploadlen)
{
    xmlDocPtr doc = parse(xml, len);
    xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
    int rc = 0;
    char buf[16];

    *truncated = false;
    next_key[0] = next_upload[0] = '\0';
    if (!root || !named(root, "ListMultipartUploadsResult")) {
        rc = EPROTO;
        goto out;
    }
    for (xmlNodePtr c = root->children; c && !rc; c = c->next) {
        if (named(c, "IsTruncated")) {
            text_of(c, buf, sizeof buf);
            *truncated = strcmp(buf, "true") == 0;
        } else if (named(c, "NextKeyMarker")) {
            text_of(c, next_key, next_keylen);
        } else if (named(c, "NextUploadIdMarker")) {
            text_of(c, next_upload, next_uploadlen);
        } else if (named(c, "Upload")) {
            char key[2048], id[512], when[64];
            struct timespec initiated = { 0, 0 };
            text_of(child(c, "Key"), key, sizeof key);
            text_of(child(c, "UploadId"), id, sizeof id);
            text_of(child(c, "Initiated"), when, sizeof when);
            s3xml_parse_time(when, &initiated);
            rc = cb(arg, key, id, &initiated);
        }
    }
out:
    if (doc)
        xmlFreeDoc(doc);
    return rc;
}
