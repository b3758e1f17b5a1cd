/* genrun.c: writes a deterministic synthetic Illumina run folder (RunInfo.xml, InterOp, BaseCalls .cbcl or .bcl.gz, ...) for tests and benchmarks. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "util/units.h"

static const char genrun_usage[] =
    "usage: genrun [options] OUTDIR\n"
    "\n"
    "Write a synthetic Illumina run folder OUTDIR/NAME.  Same options and\n"
    "seed give the same bytes, modes and mtimes.\n"
    "\n"
    "  --name NAME        run folder name (default 241023_A01295_0432_BHK3NFDRX5)\n"
    "  --lanes N          lanes, 1..8 (default 2)\n"
    "  --cycles N         cycles (default 10)\n"
    "  --tiles N          tiles per lane, 1..1782 (default 4)\n"
    "  --file-size BYTES  size of each base call file (default 16384;\n"
    "                     suffixes k, M, G)\n"
    "  --bcl              per-tile C*/s_L_TTTT.bcl.gz (files: lanes*cycles*tiles)\n"
    "                     instead of per-surface L00N_S.cbcl (lanes*cycles*2)\n"
    "  --seed N           content seed (default 1)\n"
    "  --symlinks         add symlinks (relative, absolute, dangling)\n"
    "  --hardlinks        add hard links (one file with 3 names)\n"
    "  --empty-dirs       add empty directories\n"
    "  --odd-owners       give some files other owners and unusual modes\n"
    "  --long-names       add names needing pax/GNU long-name headers\n"
    "  --fifo             add a named pipe\n"
    "  --extras           all of the six above\n"
    "  -q, --quiet        no summary line\n"
    "  -h, --help         this help\n"
    "\n"
    "For ~1M small files: --bcl --lanes 8 --cycles 318 --tiles 400 --file-size 1k\n"
    "For ~10,000 files / 1 GiB: --bcl --lanes 2 --cycles 50 --tiles 100 --file-size 100k\n";

struct opts {
    const char *name;
    unsigned lanes, cycles, tiles;
    uint64_t file_size;
    bool bcl;
    uint64_t seed;
    bool symlinks, hardlinks, empty_dirs, odd_owners, long_names, fifo;
    bool quiet;
};

struct dirtime {
    char *path;
    struct timespec mtime;
};

struct gen {
    struct opts o;
    char *root;                 /* OUTDIR/NAME */
    uint64_t files, dirs, bytes;
    struct dirtime *dts;        /* directories, in creation order */
    size_t ndts, capdts;
    unsigned char *buf;
    size_t bufcap;
    time_t base_time;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "genrun: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* ---- deterministic randomness ------------------------------------------ */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Seed for one file: the global seed mixed with a hash of its path, so a
 * file's bytes do not depend on which other files were generated. */
static uint64_t path_seed(const struct gen *g, const char *rel)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ g->o.seed;
    for (const char *p = rel; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    return h;
}

/* Base-call-like bytes: mostly high qualities, all four bases. */
static void fill_basecalls(unsigned char *p, size_t n, uint64_t *s)
{
    size_t i = 0;
    while (i + 8 <= n) {
        uint64_t r = splitmix64(s);
        memcpy(p + i, &r, 8);
        i += 8;
    }
    if (i < n) {
        uint64_t r = splitmix64(s);
        memcpy(p + i, &r, n - i);
    }
}

/* ---- gzip (stored blocks: valid, fast, no zlib needed) ---------------- */

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- file system helpers ----------------------------------------------- */

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q)
        die("out of memory");
    return q;
}

static char *path_join(const struct gen *g, const char *rel)
{
    size_t n = strlen(g->root) + 1 + strlen(rel) + 1;
    char *p = xrealloc(NULL, n);
    snprintf(p, n, "%s/%s", g->root, rel);
    return p;
}

static struct timespec file_time(const struct gen *g, const char *rel)
{
    uint64_t s = path_seed(g, rel) ^ 0x5151;
    uint64_t r = splitmix64(&s);
    struct timespec t = {
        .tv_sec = g->base_time + (time_t)(r % (36 * 3600)),
        .tv_nsec = (long)((r >> 32) % 1000000000u),
    };
    return t;
}

static void set_times(const struct gen *g, const char *rel, bool nofollow)
{
    char *p = path_join(g, rel);
    struct timespec t[2] = { file_time(g, rel), file_time(g, rel) };
    if (utimensat(AT_FDCWD, p, t, nofollow ? AT_SYMLINK_NOFOLLOW : 0) != 0)
        die("utimensat %s: %s", p, strerror(errno));
    free(p);
}

static void make_dir_mode(struct gen *g, const char *rel, mode_t mode)
{
    char *p = path_join(g, rel);
    if (mkdir(p, mode) != 0 && errno != EEXIST)
        die("mkdir %s: %s", p, strerror(errno));
    if (chmod(p, mode) != 0)
        die("chmod %s: %s", p, strerror(errno));
    free(p);
    if (g->ndts == g->capdts) {
        g->capdts = g->capdts ? g->capdts * 2 : 256;
        g->dts = xrealloc(g->dts, g->capdts * sizeof *g->dts);
    }
    g->dts[g->ndts].path = strdup(rel);
    g->dts[g->ndts].mtime = file_time(g, rel);
    g->ndts++;
    g->dirs++;
}

static void make_dir(struct gen *g, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void make_dir(struct gen *g, const char *fmt, ...)
{
    char rel[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    make_dir_mode(g, rel, 0755);
}

static void write_bytes(struct gen *g, const char *rel, const void *data,
                        size_t n, mode_t mode)
{
    char *p = path_join(g, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        die("create %s: %s", p, strerror(errno));
    const unsigned char *c = data;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            die("write %s: %s", p, strerror(errno));
        }
        c += w;
        n -= (size_t)w;
        g->bytes += (uint64_t)w;
    }
    if (fchmod(fd, mode) != 0 || close(fd) != 0)
        die("close %s: %s", p, strerror(errno));
    free(p);
    set_times(g, rel, false);
    g->files++;
}

static void write_text(struct gen *g, const char *rel, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void write_text(struct gen *g, const char *rel, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        die("out of memory");
    write_bytes(g, rel, s, (size_t)n, 0644);
    free(s);
}

static unsigned char *scratch(struct gen *g, size_t n)
{
    if (n > g->bufcap) {
        g->buf = xrealloc(g->buf, n);
        g->bufcap = n;
    }
    return g->buf;
}

static void write_random(struct gen *g, const char *rel, size_t n,
                         const void *header, size_t hlen)
{
    unsigned char *b = scratch(g, n > hlen ? n : hlen);
    uint64_t s = path_seed(g, rel);
    size_t h = hlen < n ? hlen : n;
    memcpy(b, header, h);
    fill_basecalls(b + h, n - h, &s);
    write_bytes(g, rel, b, n, 0644);
}

/* A per-tile BCL (uint32 cluster count, one byte per cluster), gzipped
 * with stored deflate blocks so the file is valid and its size exact-ish. */
static void write_bcl_gz(struct gen *g, const char *rel, size_t target)
{
    size_t overhead = 18 + 5;   /* gzip header+trailer, one block header */
    size_t raw = target > overhead + 4 ? target - overhead : 4;
    size_t nblocks = (raw + 65534) / 65535;
    if (target > overhead + 4)
        raw = target - 18 - 5 * nblocks;
    nblocks = (raw + 65534) / 65535;
    size_t out_n = 10 + raw + 5 * nblocks + 8;
    unsigned char *o = scratch(g, out_n + raw);
    unsigned char *data = o + out_n;
    uint32_t clusters = (uint32_t)(raw - 4);
    memcpy(data, &clusters, 4);
    uint64_t s = path_seed(g, rel);
    fill_basecalls(data + 4, raw - 4, &s);

    static const unsigned char hdr[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3 };
    size_t pos = 0;
    memcpy(o, hdr, 10);
    pos = 10;
    for (size_t off = 0; off < raw; off += 65535) {
        size_t len = raw - off < 65535 ? raw - off : 65535;
        o[pos++] = off + len == raw ? 1 : 0;
        o[pos++] = (unsigned char)(len & 0xff);
        o[pos++] = (unsigned char)(len >> 8);
        o[pos++] = (unsigned char)(~len & 0xff);
        o[pos++] = (unsigned char)((~len >> 8) & 0xff);
        memmove(o + pos, data + off, len);
        pos += len;
    }
    uint32_t crc = crc32_update(0, data, raw);
    uint32_t isize = (uint32_t)raw;
    for (int i = 0; i < 4; i++)
        o[pos++] = (unsigned char)(crc >> (8 * i));
    for (int i = 0; i < 4; i++)
        o[pos++] = (unsigned char)(isize >> (8 * i));
    write_bytes(g, rel, o, pos, 0644);
}

/* ---- the run folder ----------------------------------------------------- */

static unsigned tile_id(unsigned i, unsigned tiles)
{
    unsigned per_surface = (tiles + 1) / 2;
    unsigned surface = 1 + i / per_surface;
    unsigned j = i % per_surface;
    return surface * 1000 + (1 + j / 99) * 100 + (1 + j % 99);
}

static void write_metadata(struct gen *g)
{
    const struct opts *o = &g->o;
    unsigned r1 = o->cycles > 16 ? (o->cycles - 16) / 2 : o->cycles;
    unsigned i1 = o->cycles > 16 ? 8 : 0;
    unsigned r2 = o->cycles - r1 - 2 * i1;
    char *xml = NULL;
    size_t xn = 0;
    FILE *f = open_memstream(&xml, &xn);
    fprintf(f,
            "<?xml version=\"1.0\"?>\n"
            "<RunInfo Version=\"5\">\n"
            "  <Run Id=\"%s\" Number=\"432\">\n"
            "    <Flowcell>HK3NFDRX5</Flowcell>\n"
            "    <Instrument>A01295</Instrument>\n"
            "    <Date>10/23/2024 10:02:11 AM</Date>\n"
            "    <Reads>\n"
            "      <Read Number=\"1\" NumCycles=\"%u\" IsIndexedRead=\"N\"/>\n",
            o->name, r1);
    unsigned n = 2;
    if (i1) {
        fprintf(f, "      <Read Number=\"%u\" NumCycles=\"%u\" IsIndexedRead=\"Y\"/>\n", n++, i1);
        fprintf(f, "      <Read Number=\"%u\" NumCycles=\"%u\" IsIndexedRead=\"Y\"/>\n", n++, i1);
    }
    if (r2)
        fprintf(f, "      <Read Number=\"%u\" NumCycles=\"%u\" IsIndexedRead=\"N\"/>\n", n++, r2);
    fprintf(f,
            "    </Reads>\n"
            "    <FlowcellLayout LaneCount=\"%u\" SurfaceCount=\"2\" SwathCount=\"%u\" TileCount=\"%u\">\n"
            "      <TileSet TileNamingConvention=\"FourDigit\">\n"
            "        <Tiles>\n",
            o->lanes, 1 + ((o->tiles + 1) / 2 - 1) / 99,
            o->tiles < 99 ? o->tiles : 99);
    for (unsigned l = 1; l <= o->lanes; l++)
        for (unsigned t = 0; t < o->tiles; t++)
            fprintf(f, "          <Tile>%u_%u</Tile>\n", l, tile_id(t, o->tiles));
    fprintf(f,
            "        </Tiles>\n"
            "      </TileSet>\n"
            "    </FlowcellLayout>\n"
            "    <ImageDimensions Width=\"3200\" Height=\"3868\"/>\n"
            "  </Run>\n"
            "</RunInfo>\n");
    fclose(f);
    write_bytes(g, "RunInfo.xml", xml, xn, 0644);
    free(xml);

    write_text(g, "RunParameters.xml",
               "<?xml version=\"1.0\"?>\n"
               "<RunParameters>\n"
               "  <Side>A</Side>\n"
               "  <Application>NovaSeq Control Software</Application>\n"
               "  <ApplicationVersion>1.8.0</ApplicationVersion>\n"
               "  <RtaVersion>v3.4.4</RtaVersion>\n"
               "  <RunId>%s</RunId>\n"
               "  <RunNumber>432</RunNumber>\n"
               "  <InstrumentName>A01295</InstrumentName>\n"
               "  <FlowCellMode>SP</FlowCellMode>\n"
               "  <OutputFolder>\\\\nas01\\runs\\%s</OutputFolder>\n"
               "  <TotalCycles>%u</TotalCycles>\n"
               "</RunParameters>\n",
               o->name, o->name, o->cycles);

    char *csv = NULL;
    size_t cn = 0;
    f = open_memstream(&csv, &cn);
    fprintf(f,
            "[Header],,,\nIEMFileVersion,5,,\nExperiment Name,%s,,\n"
            "Date,2024-10-23,,\nWorkflow,GenerateFASTQ,,\n\n"
            "[Reads],,,\n%u,,,\n%u,,,\n\n"
            "[Data],,,\nSample_ID,Sample_Name,Lane,index\n",
            o->name, r1, r2);
    uint64_t s = o->seed * 7919 + 17;
    static const char bases[] = "ACGT";
    for (unsigned l = 1; l <= o->lanes; l++)
        for (unsigned i = 0; i < 24; i++) {
            char idx[9];
            for (int k = 0; k < 8; k++)
                idx[k] = bases[splitmix64(&s) & 3];
            idx[8] = '\0';
            fprintf(f, "S%03u,Patient_%04u_L%u,%u,%s\n", (l - 1) * 24 + i + 1,
                    (unsigned)(splitmix64(&s) % 10000), l, l, idx);
        }
    fclose(f);
    write_bytes(g, "SampleSheet.csv", csv, cn, 0644);
    free(csv);

    write_text(g, "RTAComplete.txt", "RTA 3.4.4 completed on 10/24/2024 1:12:40 AM\n");
    write_bytes(g, "CopyComplete.txt", "", 0, 0644);
    write_text(g, "RunCompletionStatus.xml",
               "<?xml version=\"1.0\"?>\n<RunCompletionStatus>\n"
               "  <CompletionStatus>CompletedAsPlanned</CompletionStatus>\n"
               "  <RunId>%s</RunId>\n</RunCompletionStatus>\n", o->name);
}

static void write_interop(struct gen *g)
{
    static const char *const metrics[] = {
        "TileMetricsOut", "ErrorMetricsOut", "ExtractionMetricsOut",
        "QMetricsOut", "CorrectedIntMetricsOut", "ImageMetricsOut",
        "IndexMetricsOut", "EmpiricalPhasingMetricsOut", "EventMetricsOut",
        "FWHMGridMetricsOut", "PFGridMetricsOut", "RegistrationMetricsOut",
    };
    make_dir(g, "InterOp");
    uint64_t records = (uint64_t)g->o.lanes * g->o.tiles * g->o.cycles;
    for (size_t i = 0; i < sizeof metrics / sizeof metrics[0]; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "InterOp/%s.bin", metrics[i]);
        uint64_t n = 2 + records * (8 + 4 * (i % 5));
        if (n > (64u << 20))
            n = 64u << 20;
        unsigned char hdr[2] = { (unsigned char)(2 + i % 5), (unsigned char)(8 + 4 * (i % 5)) };
        write_random(g, rel, (size_t)n, hdr, sizeof hdr);
    }
}

static void write_basecalls(struct gen *g)
{
    const struct opts *o = &g->o;
    make_dir(g, "Data");
    make_dir(g, "Data/Intensities");
    make_dir(g, "Data/Intensities/BaseCalls");
    static const unsigned char locs_hdr[12] = { 1, 0, 0, 0, 0, 0, 128, 63 };
    write_random(g, "Data/Intensities/s.locs", 4096, locs_hdr, sizeof locs_hdr);
    static const unsigned char cbcl_hdr[6] = { 1, 0, 0x40, 0, 0, 0 };
    static const unsigned char filter_hdr[12] = { 0, 0, 0, 0, 3, 0, 0, 0 };
    for (unsigned l = 1; l <= o->lanes; l++) {
        make_dir(g, "Data/Intensities/BaseCalls/L%03u", l);
        for (unsigned t = 0; t < o->tiles; t++) {
            char rel[256];
            snprintf(rel, sizeof rel,
                     "Data/Intensities/BaseCalls/L%03u/s_%u_%u.filter", l, l,
                     tile_id(t, o->tiles));
            write_random(g, rel, 1024 + 64 * (t % 7), filter_hdr,
                         sizeof filter_hdr);
        }
        for (unsigned c = 1; c <= o->cycles; c++) {
            make_dir(g, "Data/Intensities/BaseCalls/L%03u/C%u.1", l, c);
            char rel[256];
            if (o->bcl) {
                for (unsigned t = 0; t < o->tiles; t++) {
                    snprintf(rel, sizeof rel,
                             "Data/Intensities/BaseCalls/L%03u/C%u.1/s_%u_%u.bcl.gz",
                             l, c, l, tile_id(t, o->tiles));
                    write_bcl_gz(g, rel, (size_t)o->file_size);
                }
            } else {
                for (unsigned s = 1; s <= 2; s++) {
                    snprintf(rel, sizeof rel,
                             "Data/Intensities/BaseCalls/L%03u/C%u.1/L%03u_%u.cbcl",
                             l, c, l, s);
                    write_random(g, rel, (size_t)o->file_size, cbcl_hdr,
                                 sizeof cbcl_hdr);
                }
            }
        }
    }
}

static void write_thumbnails_and_logs(struct gen *g)
{
    const struct opts *o = &g->o;
    static const unsigned char jpg_hdr[4] = { 0xff, 0xd8, 0xff, 0xe0 };
    make_dir(g, "Thumbnail_Images");
    for (unsigned l = 1; l <= o->lanes; l++) {
        make_dir(g, "Thumbnail_Images/L%03u", l);
        make_dir(g, "Thumbnail_Images/L%03u/C1.1", l);
        unsigned nt = o->tiles < 4 ? o->tiles : 4;
        for (unsigned t = 0; t < nt; t++)
            for (const char *b = "acgt"; *b; b++) {
                char rel[256];
                snprintf(rel, sizeof rel,
                         "Thumbnail_Images/L%03u/C1.1/s_%u_%u_%c.jpg", l, l,
                         tile_id(t, o->tiles), *b);
                write_random(g, rel, 2048 + 128 * t, jpg_hdr, sizeof jpg_hdr);
            }
    }
    make_dir(g, "Logs");
    char *log = NULL;
    size_t ln = 0;
    FILE *f = open_memstream(&log, &ln);
    for (unsigned c = 1; c <= o->cycles; c++)
        fprintf(f, "10/23/2024 %02u:%02u:%02u.%03u Cycle %u of %u complete\n",
                10 + c / 60 % 14, c % 60, (c * 7) % 60, (c * 37) % 1000, c,
                o->cycles);
    fclose(f);
    write_bytes(g, "Logs/241023_100211_RTA.log", log, ln, 0644);
    free(log);
    write_text(g, "Logs/241023_100211_Warnings.log",
               "10/23/2024 10:02:15.114 Warning: fan speed low, recovered\n");
    write_text(g, "Logs/CopyComplete.log", "copy of %s complete\n", o->name);
    make_dir(g, "Config");
    write_text(g, "Config/RTA3.cfg", "[General]\nOutputCbcl=%s\n",
               o->bcl ? "false" : "true");
}

/* ---- extras for tests -------------------------------------------------- */

static void make_link(struct gen *g, const char *target, const char *rel)
{
    char *p = path_join(g, rel);
    if (symlink(target, p) != 0)
        die("symlink %s: %s", p, strerror(errno));
    free(p);
    set_times(g, rel, true);
}

static void make_hardlink(struct gen *g, const char *existing, const char *rel)
{
    char *a = path_join(g, existing), *b = path_join(g, rel);
    if (link(a, b) != 0)
        die("link %s: %s", b, strerror(errno));
    free(a);
    free(b);
}

static void write_extras(struct gen *g)
{
    const struct opts *o = &g->o;
    if (o->symlinks) {
        make_link(g, "SampleSheet.csv", "SampleSheet_latest.csv");
        make_link(g, "C1.1", "Data/Intensities/BaseCalls/L001/first_cycle");
        make_link(g, "../RunInfo.xml", "Logs/RunInfo.xml");
        make_link(g, "/etc/tarnfs/nowhere.conf", "Config/absolute_dangling");
    }
    if (o->hardlinks) {
        make_hardlink(g, "RunInfo.xml", "RunInfo.orig.xml");
        make_hardlink(g, "RunInfo.xml", "Config/RunInfo.copy.xml");
        make_hardlink(g, "Logs/CopyComplete.log", "Logs/CopyComplete.log.1");
    }
    if (o->empty_dirs) {
        make_dir(g, "Recipe");
        make_dir(g, "Data/Intensities/BaseCalls/Matrix");
        make_dir(g, "Logs/Archived");
    }
    if (o->odd_owners) {
        make_dir_mode(g, "Analysis", 02775);
        write_text(g, "Analysis/run_bcl2fastq.sh", "#!/bin/sh\nexit 0\n");
        write_text(g, "Analysis/secret.key", "not really\n");
        char *p = path_join(g, "Analysis/run_bcl2fastq.sh");
        if (chmod(p, 0755) != 0)
            die("chmod: %s", strerror(errno));
        free(p);
        p = path_join(g, "Analysis/secret.key");
        if (chmod(p, 0600) != 0)
            die("chmod: %s", strerror(errno));
        if (geteuid() == 0 && lchown(p, 1001, 1002) != 0)
            die("chown: %s", strerror(errno));
        free(p);
        p = path_join(g, "Analysis");
        if (geteuid() == 0 && lchown(p, 1001, 1002) != 0)
            die("chown: %s", strerror(errno));
        free(p);
    }
    if (o->long_names) {
        char comp[201], rel[1024];
        for (int i = 0; i < 200; i++)
            comp[i] = (char)('a' + i % 26);
        comp[200] = '\0';
        make_dir(g, "Long_%s", comp);
        snprintf(rel, sizeof rel, "Long_%s/%.40s", comp, comp);
        make_dir(g, "%s", rel);
        snprintf(rel, sizeof rel, "Long_%s/%.40s/file_%.200s.txt", comp, comp,
                 comp);
        write_text(g, rel, "a file whose path is %zu bytes long\n",
                   strlen(rel));
    }
    if (o->fifo) {
        char *p = path_join(g, "Logs/status.fifo");
        if (mkfifo(p, 0620) != 0)
            die("mkfifo %s: %s", p, strerror(errno));
        if (chmod(p, 0620) != 0)
            die("chmod: %s", strerror(errno));
        free(p);
        set_times(g, "Logs/status.fifo", false);
        g->files++;
    }
}

/* ---- main -------------------------------------------------------------- */

static uint64_t parse_size(const char *s, const char *what)
{
    uint64_t v;
    if (units_size(s, &v))
        die("bad %s '%s'", what, s);
    return v;
}

int main(int argc, char **argv)
{
    enum { O_NAME = 256, O_LANES, O_CYCLES, O_TILES, O_FSIZE, O_BCL, O_SEED,
           O_SYM, O_HARD, O_EMPTY, O_OWN, O_LONG, O_FIFO, O_EXTRAS };
    static const struct option opts[] = {
        { "name", required_argument, NULL, O_NAME },
        { "lanes", required_argument, NULL, O_LANES },
        { "cycles", required_argument, NULL, O_CYCLES },
        { "tiles", required_argument, NULL, O_TILES },
        { "file-size", required_argument, NULL, O_FSIZE },
        { "bcl", no_argument, NULL, O_BCL },
        { "seed", required_argument, NULL, O_SEED },
        { "symlinks", no_argument, NULL, O_SYM },
        { "hardlinks", no_argument, NULL, O_HARD },
        { "empty-dirs", no_argument, NULL, O_EMPTY },
        { "odd-owners", no_argument, NULL, O_OWN },
        { "long-names", no_argument, NULL, O_LONG },
        { "fifo", no_argument, NULL, O_FIFO },
        { "extras", no_argument, NULL, O_EXTRAS },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct gen g = { .o = {
        .name = "241023_A01295_0432_BHK3NFDRX5",
        .lanes = 2, .cycles = 10, .tiles = 4, .file_size = 16384, .seed = 1,
    } };
    int c;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (c) {
        case O_NAME: g.o.name = optarg; break;
        case O_LANES: g.o.lanes = (unsigned)parse_size(optarg, "--lanes"); break;
        case O_CYCLES: g.o.cycles = (unsigned)parse_size(optarg, "--cycles"); break;
        case O_TILES: g.o.tiles = (unsigned)parse_size(optarg, "--tiles"); break;
        case O_FSIZE: g.o.file_size = parse_size(optarg, "--file-size"); break;
        case O_BCL: g.o.bcl = true; break;
        case O_SEED: g.o.seed = parse_size(optarg, "--seed"); break;
        case O_SYM: g.o.symlinks = true; break;
        case O_HARD: g.o.hardlinks = true; break;
        case O_EMPTY: g.o.empty_dirs = true; break;
        case O_OWN: g.o.odd_owners = true; break;
        case O_LONG: g.o.long_names = true; break;
        case O_FIFO: g.o.fifo = true; break;
        case O_EXTRAS:
            g.o.symlinks = g.o.hardlinks = g.o.empty_dirs = true;
            g.o.odd_owners = g.o.long_names = g.o.fifo = true;
            break;
        case 'q': g.o.quiet = true; break;
        case 'h': fputs(genrun_usage, stdout); return 0;
        default: fputs(genrun_usage, stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fputs(genrun_usage, stderr);
        return 2;
    }
    if (g.o.lanes < 1 || g.o.lanes > 8)
        die("--lanes must be 1..8");
    if (g.o.cycles < 1 || g.o.cycles > 9999)
        die("--cycles must be 1..9999");
    if (g.o.tiles < 1 || g.o.tiles > 1782)
        die("--tiles must be 1..1782");
    if (g.o.file_size < 64 || g.o.file_size > (1ULL << 32))
        die("--file-size must be 64 bytes..4 GiB");
    if (!*g.o.name || strchr(g.o.name, '/'))
        die("--name must be one path component");
    crc_init();
    g.base_time = 1729677731;   /* 2024-10-23 10:02:11 UTC */

    const char *out = argv[optind];
    if (mkdir(out, 0755) != 0 && errno != EEXIST)
        die("mkdir %s: %s", out, strerror(errno));
    size_t rn = strlen(out) + 1 + strlen(g.o.name) + 1;
    g.root = xrealloc(NULL, rn);
    snprintf(g.root, rn, "%s/%s", out, g.o.name);
    if (mkdir(g.root, 0755) != 0)
        die("mkdir %s: %s", g.root, strerror(errno));
    if (chmod(g.root, 0755) != 0)
        die("chmod %s: %s", g.root, strerror(errno));

    write_metadata(&g);
    write_interop(&g);
    write_basecalls(&g);
    write_thumbnails_and_logs(&g);
    write_extras(&g);

    /* Directory times last, deepest first, so no later creation bumps them. */
    for (size_t i = g.ndts; i-- > 0;) {
        set_times(&g, g.dts[i].path, false);
        free(g.dts[i].path);
    }
    struct timespec t[2] = { file_time(&g, ""), file_time(&g, "") };
    if (utimensat(AT_FDCWD, g.root, t, 0) != 0)
        die("utimensat %s: %s", g.root, strerror(errno));
    if (!g.o.quiet)
        printf("genrun: %s: %" PRIu64 " files, %" PRIu64 " dirs, %" PRIu64
               " bytes\n", g.root, g.files, g.dirs + 1, g.bytes);
    free(g.dts);
    free(g.buf);
    free(g.root);
    return 0;
}
