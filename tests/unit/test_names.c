/*
 * test_names: tunnel name rules (valid, invalid, reserved), the messages a
 * user sees for each broken rule, and random names over many draws.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "check.h"
#include "names.h"

#define V(s) name_validate((s), strlen(s))

static void test_valid(void)
{
    CHECK_EQ(V("a"), 0);
    CHECK_EQ(V("myapp"), 0);
    CHECK_EQ(V("my-app"), 0);
    CHECK_EQ(V("a-b-c"), 0);
    CHECK_EQ(V("0"), 0);
    CHECK_EQ(V("123"), 0);
    CHECK_EQ(V("bexomu-tadira"), 0);
    CHECK_EQ(V("a--b"), 0); /* "--" elsewhere than positions 3-4 is fine */
    CHECK_EQ(V("ab-c"), 0);
    char n63[64];
    memset(n63, 'a', 63);
    n63[63] = '\0';
    CHECK_EQ(V(n63), 0);
    /* only p[0..len) counts: no NUL needed */
    CHECK_EQ(name_validate("myapp.example.com", 5), 0);
    CHECK_EQ(name_validate("www2", 3), -EPERM);
}

static void test_invalid(void)
{
    CHECK_EQ(name_validate("", 0), -EINVAL);
    CHECK_EQ(name_validate(NULL, 0), -EINVAL);
    char n64[65];
    memset(n64, 'a', 64);
    n64[64] = '\0';
    CHECK_EQ(V(n64), -EINVAL);
    CHECK_EQ(V("MyApp"), -EINVAL);
    CHECK_EQ(V("my_app"), -EINVAL);
    CHECK_EQ(V("my.app"), -EINVAL);
    CHECK_EQ(V("my app"), -EINVAL);
    CHECK_EQ(V("-app"), -EINVAL);
    CHECK_EQ(V("app-"), -EINVAL);
    CHECK_EQ(V("-"), -EINVAL);
    CHECK_EQ(V("_tunnel"), -EINVAL);
    CHECK_EQ(V("caf\xc3\xa9"), -EINVAL);
    CHECK_EQ(V("a/b"), -EINVAL);
    CHECK_EQ(V("a:80"), -EINVAL);
    CHECK_EQ(name_validate("ab\0cd", 5), -EINVAL);
    CHECK_EQ(V("a\r\nb"), -EINVAL);
}

static void test_reserved(void)
{
    static const char *const must[] = {
        "www",     "api",       "admin", "app",       "mail",    "ftp",    "smtp",
        "imap",    "pop",       "ns1",   "ns2",       "dns",     "status", "tunnel",
        "control", "localhost", "root",  "dashboard", "metrics", "health",
    };
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++) {
        CHECK_EQ(V(must[i]), -EPERM);
        CHECK(name_is_reserved(must[i], strlen(must[i])));
    }
    /* internationalized-label prefix */
    CHECK_EQ(V("xn--caf-dma"), -EPERM);
    CHECK_EQ(V("ab--cd"), -EPERM);
    /* near misses are not reserved */
    CHECK_EQ(V("www1"), 0);
    CHECK_EQ(V("ww"), 0);
    CHECK_EQ(V("apis"), 0);
    CHECK_EQ(V("my-api"), 0);
    CHECK(!name_is_reserved("myapp", 5));
    CHECK(!name_is_reserved("wwww", 4));
    /* syntax is checked before the list */
    CHECK_EQ(V("WWW"), -EINVAL);
}

static void explain(const char *s, size_t len, char *out, size_t cap)
{
    name_explain(s, len, out, cap);
}

static void test_explain(void)
{
    char m[256];
    explain("My_App", 6, m, sizeof m);
    CHECK(strstr(m, "\"My_App\"") != NULL);
    CHECK(strstr(m, "may only contain a-z, 0-9 and '-'") != NULL);
    CHECK(strstr(m, "'M'") != NULL);
    CHECK(strstr(m, "lower case") != NULL);

    explain("my_app", 6, m, sizeof m);
    CHECK(strstr(m, "\"my_app\"") != NULL);
    CHECK(strstr(m, "'_'") != NULL);

    explain("", 0, m, sizeof m);
    CHECK(strstr(m, "empty") != NULL);

    char n70[71];
    memset(n70, 'b', 70);
    n70[70] = '\0';
    explain(n70, 70, m, sizeof m);
    CHECK(strstr(m, "70 characters") != NULL);
    CHECK(strstr(m, "63") != NULL);
    CHECK(strstr(m, "bbbb") != NULL);

    explain("-app", 4, m, sizeof m);
    CHECK(strstr(m, "\"-app\"") != NULL);
    CHECK(strstr(m, "start or end with '-'") != NULL);
    explain("app-", 4, m, sizeof m);
    CHECK(strstr(m, "start or end with '-'") != NULL);

    explain("admin", 5, m, sizeof m);
    CHECK(strstr(m, "\"admin\"") != NULL);
    CHECK(strstr(m, "reserved") != NULL);

    explain("xn--abc", 7, m, sizeof m);
    CHECK(strstr(m, "\"xn--abc\"") != NULL);
    CHECK(strstr(m, "reserved") != NULL);
    CHECK(strstr(m, "internationalized") != NULL);

    explain("myapp", 5, m, sizeof m);
    CHECK(strstr(m, "valid") != NULL);

    /* untrusted bytes are escaped, not echoed raw */
    explain("a\nb\"c\x01", 6, m, sizeof m);
    CHECK(strchr(m, '\n') == NULL);
    CHECK(strchr(m, '\x01') == NULL);
    CHECK(strstr(m, "a\\x0ab\\x22c\\x01") != NULL);
    CHECK(strstr(m, "byte 0x0a at position 2") != NULL);
    explain("caf\xc3\xa9", 5, m, sizeof m);
    CHECK(strstr(m, "caf\\xc3\\xa9") != NULL);

    /* truncation always terminates; cap 0 writes nothing */
    char small[8];
    memset(small, 'z', sizeof small);
    explain("My_App", 6, small, sizeof small);
    CHECK_EQ(strlen(small), 7);
    char none = 'q';
    explain("My_App", 6, &none, 0);
    CHECK_EQ(none, 'q');
}

static bool is_consonant(char c)
{
    return c && strchr("bdfghjklmnprstvz", c) != NULL;
}

static bool is_vowel(char c)
{
    return c && strchr("aeiou", c) != NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void test_random(void)
{
    enum { DRAWS = 10000 };
    static char names[DRAWS][21];
    int bad_valid = 0, bad_shape = 0, bad_len = 0;
    unsigned first_letter[26] = {0};
    for (int i = 0; i < DRAWS; i++) {
        char *n = names[i];
        memset(n, 'X', 21);
        name_random(n, 21);
        size_t len = strnlen(n, 21);
        if (len > 20 || len == 0)
            bad_len++;
        if (name_validate(n, len) != 0)
            bad_valid++;
        /* shape: CVCVCV-CVCVCV */
        bool ok = len == 13 && n[6] == '-';
        for (int k = 0; ok && k < 13; k++) {
            if (k == 6)
                continue;
            int pos = k < 6 ? k : k - 7;
            ok = pos % 2 == 0 ? is_consonant(n[k]) : is_vowel(n[k]);
        }
        if (!ok)
            bad_shape++;
        if (n[0] >= 'a' && n[0] <= 'z')
            first_letter[n[0] - 'a']++;
    }
    CHECK_EQ(bad_len, 0);
    CHECK_EQ(bad_valid, 0);
    CHECK_EQ(bad_shape, 0);
    /* every consonant shows up first, roughly evenly (expected 625 each) */
    int uneven = 0;
    for (const char *c = "bdfghjklmnprstvz"; *c; c++)
        if (first_letter[*c - 'a'] < 400 || first_letter[*c - 'a'] > 850)
            uneven++;
    CHECK_EQ(uneven, 0);
    /* 37.9 bits: a duplicate among 10,000 has probability ~2e-4 */
    qsort(names, DRAWS, sizeof names[0], cmp_str);
    int dups = 0;
    for (int i = 1; i < DRAWS; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            dups++;
    CHECK(dups <= 1);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    test_valid();
    test_invalid();
    test_reserved();
    test_explain();
    test_random();
    return check_done();
}
