/*
 * keys: parse the auth keys file, check presented keys, make new ones.
 *
 * Why: the edge must decide "is this a key we issued?" without holding the
 * keys themselves: the file keeps only a public id and the BLAKE2b-256 hash
 * of each key, so a leaked file grants nothing.
 *
 * File syntax, per line: optional leading blanks (space or tab); empty lines
 * and lines starting with '#' are ignored; otherwise `<id> <hash> [label]`
 * where <id> is 8 lowercase hex digits, <hash> 64 hex digits, fields are
 * separated by blanks, a trailing '\r' is ignored and the label is free text
 * without control characters (it is not kept; comments may hold anything).
 * Limits: lines of at most KEYS_LINE_MAX bytes, KEYS_MAX entries, files of
 * KEYS_FILE_MAX bytes.
 *
 * Invariants: entries are sorted by id and ids are unique, so a lookup by the
 * (public) id is a binary search; the secret part only ever meets
 * crypto_generichash and sodium_memcmp, and a hash is computed and compared
 * even when the id is unknown, so timing says nothing about the secret.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "keys.h"

#define KEYS_ID_LEN 8
#define KEYS_SECRET_LEN 32
#define KEYS_SECRET_B64_LEN 43
#define KEYS_HASH_LEN 32
#define KEYS_HASH_HEX_LEN (2 * KEYS_HASH_LEN)
#define KEYS_LINE_MAX 1024
#define KEYS_MAX (1u << 20)
#define KEYS_FILE_MAX (64u * 1024 * 1024)
#define KEYS_PREFIX "wk_"
#define KEYS_PREFIX_LEN 3

struct key_entry {
    uint32_t id;
    unsigned line; /* where it was defined: reports duplicates */
    uint8_t hash[KEYS_HASH_LEN];
};

struct keyset {
    struct key_entry *e;
    size_t n;
    size_t cap;
};

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Exactly KEYS_ID_LEN lowercase hex digits. */
static int parse_id(const char *p, size_t len, uint32_t *id)
{
    if (len != KEYS_ID_LEN)
        return -EINVAL;
    uint32_t v = 0;
    for (size_t i = 0; i < len; i++) {
        int d = hex_val(p[i]);
        if (d < 0 || (p[i] >= 'A' && p[i] <= 'F'))
            return -EINVAL;
        v = v << 4 | (uint32_t)d;
    }
    *id = v;
    return 0;
}

static int parse_hash(const char *p, size_t len, uint8_t out[KEYS_HASH_LEN])
{
    if (len != KEYS_HASH_HEX_LEN)
        return -EINVAL;
    for (size_t i = 0; i < KEYS_HASH_LEN; i++) {
        int hi = hex_val(p[2 * i]), lo = hex_val(p[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static size_t skip_blanks(const char *p, size_t i, size_t len)
{
    while (i < len && is_blank(p[i]))
        i++;
    return i;
}

static size_t field_end(const char *p, size_t i, size_t len)
{
    while (i < len && !is_blank(p[i]))
        i++;
    return i;
}

/* Label: free text, but no control characters (tab is a blank). */
static bool label_ok(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* One line without its '\n'. Returns 1 with *e filled for a key line, 0 for a
 * blank or comment line, -EINVAL for a malformed line. */
static int parse_line(const char *p, size_t len, struct key_entry *e)
{
    if (len > KEYS_LINE_MAX)
        return -EINVAL;
    if (len > 0 && p[len - 1] == '\r')
        len--;
    while (len > 0 && is_blank(p[len - 1]))
        len--;
    size_t i = skip_blanks(p, 0, len);
    if (i == len || p[i] == '#')
        return 0;

    size_t id_end = field_end(p, i, len);
    if (parse_id(p + i, id_end - i, &e->id) < 0)
        return -EINVAL;
    size_t h = skip_blanks(p, id_end, len);
    if (h == id_end)
        return -EINVAL; /* no separator, or no hash */
    size_t h_end = field_end(p, h, len);
    if (parse_hash(p + h, h_end - h, e->hash) < 0)
        return -EINVAL;
    return label_ok(p + h_end, len - h_end) ? 1 : -EINVAL;
}

static int entry_cmp(const void *a, const void *b)
{
    const struct key_entry *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* Sort; returns the earliest line that repeats an id seen before it, or 0. */
static unsigned sort_find_dup(struct key_entry *e, size_t n)
{
    unsigned worst = 0;
    if (n > 1)
        qsort(e, n, sizeof *e, entry_cmp);
    for (size_t i = 1; i < n; i++)
        if (e[i].id == e[i - 1].id && (worst == 0 || e[i].line < worst))
            worst = e[i].line;
    return worst;
}

static int keyset_push(keyset *k, const struct key_entry *e)
{
    if (k->n == k->cap) {
        size_t ncap = k->cap ? k->cap * 2 : 16;
        struct key_entry *ne = realloc(k->e, ncap * sizeof *ne);
        if (!ne)
            return -ENOMEM;
        k->e = ne;
        k->cap = ncap;
    }
    k->e[k->n++] = *e;
    return 0;
}

keyset *keyset_parse(const char *p, size_t len, unsigned *err_line)
{
    unsigned dummy;
    if (!err_line)
        err_line = &dummy;
    *err_line = 0;
    keyset *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;

    unsigned line = 0, bad = 0;
    size_t pos = 0;
    while (pos < len && bad == 0) {
        line++;
        const char *nl = memchr(p + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - p) : len;
        struct key_entry e;
        int rc = parse_line(p + pos, end - pos, &e);
        if (rc < 0 || (rc == 1 && k->n >= KEYS_MAX)) {
            bad = line;
        } else if (rc == 1) {
            e.line = line;
            if (keyset_push(k, &e) < 0) {
                keyset_free(k);
                return NULL; /* *err_line stays 0: out of memory */
            }
        }
        pos = end + 1;
    }
    /* A duplicate before the first malformed line is the first bad line. */
    unsigned dup = sort_find_dup(k->e, k->n);
    if (dup && (bad == 0 || dup < bad))
        bad = dup;
    if (bad) {
        *err_line = bad;
        keyset_free(k);
        return NULL;
    }
    return k;
}

static int read_all(int fd, char **out, size_t *out_len)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    if (st.st_size < 0 || (uintmax_t)st.st_size > KEYS_FILE_MAX)
        return -EFBIG;
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *data = malloc(cap);
    if (!data)
        return -ENOMEM;
    for (;;) {
        if (len == cap) { /* the file grew while we read it */
            free(data);
            return -EFBIG;
        }
        ssize_t r = read(fd, data + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int err = errno;
            free(data);
            return -err;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    *out = data;
    *out_len = len;
    return 0;
}

keyset *keyset_load(const char *path, unsigned *err_line)
{
    unsigned dummy;
    if (!err_line)
        err_line = &dummy;
    *err_line = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *data = NULL;
    size_t len = 0;
    int rc = read_all(fd, &data, &len);
    close(fd);
    if (rc < 0) {
        errno = -rc;
        return NULL;
    }
    keyset *k = keyset_parse(data, len, err_line);
    free(data);
    if (!k)
        errno = *err_line ? EINVAL : ENOMEM;
    return k;
}

void keyset_free(keyset *k)
{
    if (!k)
        return;
    free(k->e);
    free(k);
}

size_t keyset_count(const keyset *k)
{
    return k ? k->n : 0;
}

static const struct key_entry *find_id(const keyset *k, uint32_t id)
{
    size_t lo = 0, hi = k->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (k->e[mid].id == id)
            return &k->e[mid];
        if (k->e[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Shape of a key: "wk_" 8 lowercase hex "_" 43 base64url chars that decode to
 * exactly 32 bytes (canonical last character). */
static int key_shape(const char *key, size_t len, uint32_t *id)
{
    if (len != KEY_TEXT_LEN || memcmp(key, KEYS_PREFIX, KEYS_PREFIX_LEN) != 0)
        return -EINVAL;
    if (parse_id(key + KEYS_PREFIX_LEN, KEYS_ID_LEN, id) < 0)
        return -EINVAL;
    if (key[KEYS_PREFIX_LEN + KEYS_ID_LEN] != '_')
        return -EINVAL;
    uint8_t secret[KEYS_SECRET_LEN];
    size_t n = 0;
    const char *b64 = key + KEYS_PREFIX_LEN + KEYS_ID_LEN + 1;
    int rc = sodium_base642bin(secret, sizeof secret, b64, KEYS_SECRET_B64_LEN, NULL, &n, NULL,
                               sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(secret, sizeof secret);
    return rc == 0 && n == KEYS_SECRET_LEN ? 0 : -EINVAL;
}

int keyset_check(const keyset *k, const char *key, size_t len)
{
    uint32_t id = 0;
    if (!k || key_shape(key, len, &id) < 0)
        return -EACCES;
    static const uint8_t no_match[KEYS_HASH_LEN];
    const struct key_entry *e = find_id(k, id);
    const uint8_t *want = e ? e->hash : no_match;
    uint8_t h[KEYS_HASH_LEN];
    crypto_generichash(h, sizeof h, (const unsigned char *)key, len, NULL, 0);
    int same = sodium_memcmp(h, want, sizeof h) == 0;
    sodium_memzero(h, sizeof h);
    return e && same ? 0 : -EACCES;
}

int keys_generate(char *out, size_t cap, char *line, size_t line_cap, const char *label)
{
    static const char hex[] = "0123456789abcdef";
    size_t label_len = label ? strlen(label) : 0;
    if (label_len && !label_ok(label, label_len))
        return -EINVAL;
    size_t need_line = KEYS_ID_LEN + 1 + KEYS_HASH_HEX_LEN + (label_len ? 1 + label_len : 0) + 2;
    if (cap < KEY_TEXT_LEN + 1 || line_cap < need_line)
        return -ENOSPC;

    uint8_t id[KEYS_ID_LEN / 2], secret[KEYS_SECRET_LEN];
    randombytes_buf(id, sizeof id);
    randombytes_buf(secret, sizeof secret);

    char text[KEY_TEXT_LEN + 1];
    char b64[KEYS_SECRET_B64_LEN + 1];
    size_t o = 0;
    memcpy(text, KEYS_PREFIX, KEYS_PREFIX_LEN);
    o += KEYS_PREFIX_LEN;
    for (size_t i = 0; i < sizeof id; i++) {
        text[o++] = hex[id[i] >> 4];
        text[o++] = hex[id[i] & 15];
    }
    text[o++] = '_';
    sodium_bin2base64(b64, sizeof b64, secret, sizeof secret,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    memcpy(text + o, b64, KEYS_SECRET_B64_LEN);
    o += KEYS_SECRET_B64_LEN;
    text[o] = '\0';

    uint8_t h[KEYS_HASH_LEN];
    crypto_generichash(h, sizeof h, (const unsigned char *)text, KEY_TEXT_LEN, NULL, 0);

    size_t l = 0;
    memcpy(line, text + KEYS_PREFIX_LEN, KEYS_ID_LEN);
    l += KEYS_ID_LEN;
    line[l++] = ' ';
    sodium_bin2hex(line + l, line_cap - l, h, sizeof h);
    l += KEYS_HASH_HEX_LEN;
    if (label_len) {
        line[l++] = ' ';
        memcpy(line + l, label, label_len);
        l += label_len;
    }
    line[l++] = '\n';
    line[l] = '\0';

    memcpy(out, text, KEY_TEXT_LEN + 1);
    sodium_memzero(secret, sizeof secret);
    sodium_memzero(b64, sizeof b64);
    sodium_memzero(text, sizeof text);
    return 0;
}
