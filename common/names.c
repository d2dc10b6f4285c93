/*
 * names: validation, the reserved list and random names for tunnels.
 *
 * Why: a tunnel name becomes the left-most DNS label of a public host name,
 * so it must be a valid LDH label, must not shadow the service's own hosts
 * (www, api, the control host...) and, when the user does not choose one,
 * must be easy to read aloud yet hard to guess.
 *
 * Rules, in the order they are checked (name_explain reports the first one
 * broken): 1..63 characters; only a-z, 0-9 and '-'; no '-' at either end;
 * not reserved. Reserved means on the list below, or a label with "--" in
 * positions 3 and 4 (RFC 5891 keeps those for internationalized names:
 * "xn--..." would show in browsers as look-alike Unicode).
 *
 * Random names are two words of three consonant-vowel syllables joined by
 * '-' ("bexomu-tadira"): 16 consonants x 5 vowels per syllable, six
 * syllables, log2(80^6) = 37.9 bits. No global state: randomness comes from
 * libsodium (the caller has called sodium_init()).
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "names.h"

static const char *const reserved[] = {
    "admin",    "api",       "app",    "assets",  "auth",    "billing", "blog", "cdn",
    "control",  "dashboard", "dns",    "docs",    "ftp",     "health",  "help", "imap",
    "internal", "localhost", "login",  "mail",    "metrics", "mx",      "ns",   "ns1",
    "ns2",      "ns3",       "ns4",    "pop",     "pop3",    "root",    "smtp", "static",
    "status",   "support",   "tunnel", "tunnels", "webmail", "www",
};

static const char consonants[] = "bdfghjklmnprstvz";
static const char vowels[] = "aeiou";
#define RANDOM_WORDS 2
#define RANDOM_SYLLABLES 3

static bool name_char_valid(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* Position of the first character outside [a-z0-9-], or len if none. */
static size_t first_bad_char(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!name_char_valid(p[i]))
            return i;
    return len;
}

static int syntax_check(const char *p, size_t len)
{
    if (len == 0 || len > NAME_MAX_LEN)
        return -EINVAL;
    if (first_bad_char(p, len) != len)
        return -EINVAL;
    if (p[0] == '-' || p[len - 1] == '-')
        return -EINVAL;
    return 0;
}

static bool idna_reserved(const char *p, size_t len)
{
    return len >= 4 && p[2] == '-' && p[3] == '-';
}

static bool on_list(const char *p, size_t len)
{
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strlen(reserved[i]) == len && memcmp(reserved[i], p, len) == 0)
            return true;
    return false;
}

bool name_is_reserved(const char *p, size_t len)
{
    return on_list(p, len) || idna_reserved(p, len);
}

int name_validate(const char *p, size_t len)
{
    int rc = syntax_check(p, len);
    if (rc < 0)
        return rc;
    return name_is_reserved(p, len) ? -EPERM : 0;
}

/* Quote untrusted bytes for a message: printable ASCII as is, the rest as
 * \xNN, at most 40 input bytes then "...". Always NUL-terminates (cap >= 1). */
static void quote_name(const char *p, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    size_t shown = len > 40 ? 40 : len;
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            if (o + 1 >= cap)
                break;
            out[o++] = (char)c;
        } else {
            if (o + 4 >= cap)
                break;
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (shown < len && o + 3 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

static void explain_char(const char *q, const char *p, size_t len, size_t bad, char *out,
                         size_t cap)
{
    unsigned char c = (unsigned char)p[bad];
    const char *hint = "";
    if (c >= 'A' && c <= 'Z')
        hint = " (use lower case)";
    else if (c == '_' || c == '.' || c == ' ')
        hint = " (use '-' to separate words)";
    if (c >= 0x21 && c < 0x7f)
        snprintf(out, cap,
                 "name \"%s\" may only contain a-z, 0-9 and '-': '%c' at position %zu is not "
                 "allowed%s",
                 q, c, bad + 1, hint);
    else
        snprintf(out, cap,
                 "name \"%s\" may only contain a-z, 0-9 and '-': byte 0x%02x at position %zu is "
                 "not allowed",
                 q, c, bad + 1);
}

void name_explain(const char *p, size_t len, char *out, size_t cap)
{
    char q[40 * 4 + 4];
    if (cap == 0)
        return;
    quote_name(p, len, q, sizeof q);
    size_t bad = first_bad_char(p, len);

    if (len == 0)
        snprintf(out, cap, "name is empty: it must be 1 to %d characters", NAME_MAX_LEN);
    else if (len > NAME_MAX_LEN)
        snprintf(out, cap, "name \"%s\" is %zu characters long: at most %d are allowed", q, len,
                 NAME_MAX_LEN);
    else if (bad != len)
        explain_char(q, p, len, bad, out, cap);
    else if (p[0] == '-' || p[len - 1] == '-')
        snprintf(out, cap, "name \"%s\" may not start or end with '-'", q);
    else if (on_list(p, len))
        snprintf(out, cap, "name \"%s\" is reserved: choose another one", q);
    else if (idna_reserved(p, len))
        snprintf(out, cap,
                 "name \"%s\" is reserved: names with \"--\" at positions 3-4 are kept for "
                 "internationalized domain names",
                 q);
    else
        snprintf(out, cap, "name \"%s\" is valid", q);
}

void name_random(char *out, size_t cap)
{
    assert(cap >= 21);
    if (cap < 21) {
        if (cap)
            out[0] = '\0';
        return;
    }
    do {
        size_t o = 0;
        for (int w = 0; w < RANDOM_WORDS; w++) {
            if (w)
                out[o++] = '-';
            for (int s = 0; s < RANDOM_SYLLABLES; s++) {
                out[o++] = consonants[randombytes_uniform(sizeof consonants - 1)];
                out[o++] = vowels[randombytes_uniform(sizeof vowels - 1)];
            }
        }
        out[o] = '\0';
    } while (name_validate(out, strlen(out)) != 0);
}
