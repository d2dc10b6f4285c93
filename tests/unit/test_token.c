/*
 * test_token: reconnect tokens round-trip; another key, a flipped byte, an
 * expired token and garbage are each refused with their documented errno.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "check.h"
#include "token.h"

static uint8_t key[TOKEN_KEY_LEN], key2[TOKEN_KEY_LEN];

#define T0 1700000000ull

static int verify(const char *tok, uint64_t now, char *name)
{
    return token_verify(key, tok, strlen(tok), now, name, 64);
}

static void test_roundtrip(void)
{
    char tok[TOKEN_MAX_LEN], name[64];
    CHECK_EQ(token_issue(key, "myapp", T0 + 30, tok, sizeof tok), 0);
    CHECK(strlen(tok) > 0);
    /* URL-safe, unpadded: only [A-Za-z0-9_-] */
    CHECK_EQ(strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
             strlen(tok));
    CHECK_EQ(verify(tok, T0, name), 0);
    CHECK_STR(name, "myapp");
    CHECK_EQ(verify(tok, T0 + 29, name), 0);

    /* the longest name fits in TOKEN_MAX_LEN */
    char n63[64];
    memset(n63, 'z', 63);
    n63[63] = '\0';
    CHECK_EQ(token_issue(key, n63, T0 + 30, tok, sizeof tok), 0);
    CHECK(strlen(tok) < TOKEN_MAX_LEN);
    CHECK_EQ(verify(tok, T0, name), 0);
    CHECK_STR(name, n63);

    /* two tokens for the same name differ (random nonce) */
    char a[TOKEN_MAX_LEN], b[TOKEN_MAX_LEN];
    CHECK_EQ(token_issue(key, "same", T0 + 30, a, sizeof a), 0);
    CHECK_EQ(token_issue(key, "same", T0 + 30, b, sizeof b), 0);
    CHECK(strcmp(a, b) != 0);

    /* verify needs no NUL: a token inside a larger string */
    char json[TOKEN_MAX_LEN + 8];
    size_t tl = strlen(a);
    memcpy(json, a, tl);
    memcpy(json + tl, "\",\"x\"", 6);
    CHECK_EQ(token_verify(key, json, tl, T0, name, 64), 0);
    CHECK_STR(name, "same");
    CHECK_EQ(token_verify(key, json, tl + 1, T0, name, 64), -EINVAL);
}

static void test_issue_errors(void)
{
    char tok[TOKEN_MAX_LEN];
    CHECK_EQ(token_issue(key, "", T0, tok, sizeof tok), -EINVAL);
    CHECK_EQ(token_issue(key, "Bad_Name", T0, tok, sizeof tok), -EINVAL);
    CHECK_EQ(token_issue(key, "-x", T0, tok, sizeof tok), -EINVAL);
    char n64[65];
    memset(n64, 'a', 64);
    n64[64] = '\0';
    CHECK_EQ(token_issue(key, n64, T0, tok, sizeof tok), -EINVAL);
    /* too small an output */
    memset(tok, 'Q', sizeof tok);
    CHECK_EQ(token_issue(key, "myapp", T0, tok, 20), -ENOSPC);
    CHECK_EQ(tok[0], 'Q');
    CHECK_EQ(token_issue(key, "myapp", T0, tok, 0), -ENOSPC);
}

static void test_wrong_key_tamper(void)
{
    char tok[TOKEN_MAX_LEN], name[64];
    CHECK_EQ(token_issue(key, "myapp", T0 + 30, tok, sizeof tok), 0);
    snprintf(name, sizeof name, "untouched");
    CHECK_EQ(token_verify(key2, tok, strlen(tok), T0, name, 64), -EBADMSG);
    CHECK_STR(name, "untouched");

    /* change one character anywhere: never accepted */
    size_t len = strlen(tok);
    int accepted = 0, badmsg = 0;
    for (size_t i = 0; i < len; i++) {
        char t[TOKEN_MAX_LEN];
        memcpy(t, tok, len + 1);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        int rc = verify(t, T0, name);
        if (rc == 0)
            accepted++;
        if (rc == -EBADMSG)
            badmsg++;
    }
    CHECK_EQ(accepted, 0);
    CHECK(badmsg > (int)len / 2); /* most changes keep the shape: MAC catches them */

    /* a tampered expiry is a MAC failure, not "valid" or "expired" */
    uint8_t bin[200];
    size_t bl;
    CHECK_EQ(sodium_base642bin(bin, sizeof bin, tok, len, NULL, &bl, NULL,
                               sodium_base64_VARIANT_URLSAFE_NO_PADDING),
             0);
    bin[8] ^= 0x01; /* lowest byte of the expiry */
    char t2[TOKEN_MAX_LEN];
    sodium_bin2base64(t2, sizeof t2, bin, bl, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    CHECK_EQ(verify(t2, T0, name), -EBADMSG);
    bin[8] ^= 0x01;
    bin[10] = 'n'; /* name "myapp" -> "nyapp" */
    sodium_bin2base64(t2, sizeof t2, bin, bl, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    CHECK_EQ(verify(t2, T0, name), -EBADMSG);
    bin[10] = 'm';
    sodium_bin2base64(t2, sizeof t2, bin, bl, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    CHECK_EQ(verify(t2, T0, name), 0);
}

static void test_expired(void)
{
    char tok[TOKEN_MAX_LEN], name[64];
    CHECK_EQ(token_issue(key, "myapp", T0 + 30, tok, sizeof tok), 0);
    CHECK_EQ(verify(tok, T0 + 29, name), 0);
    snprintf(name, sizeof name, "untouched");
    CHECK_EQ(verify(tok, T0 + 30, name), -ETIMEDOUT);
    CHECK_EQ(verify(tok, T0 + 1000000, name), -ETIMEDOUT);
    CHECK_STR(name, "untouched");
    /* an expired token from another key is a MAC failure, not "expired" */
    CHECK_EQ(token_verify(key2, tok, strlen(tok), T0 + 1000, name, 64), -EBADMSG);
    /* expiry 0 is always expired; far future works */
    CHECK_EQ(token_issue(key, "myapp", 0, tok, sizeof tok), 0);
    CHECK_EQ(verify(tok, 0, name), -ETIMEDOUT);
    CHECK_EQ(token_issue(key, "myapp", UINT64_MAX, tok, sizeof tok), 0);
    CHECK_EQ(verify(tok, UINT64_MAX - 1, name), 0);
}

static void test_garbage(void)
{
    char name[64];
    CHECK_EQ(token_verify(key, "", 0, T0, name, 64), -EINVAL);
    CHECK_EQ(verify("not a token", T0, name), -EINVAL);
    CHECK_EQ(verify("AAAA", T0, name), -EINVAL);
    CHECK_EQ(verify("AAAA====", T0, name), -EINVAL);
    CHECK_EQ(verify("abc+/def", T0, name), -EINVAL);

    char tok[TOKEN_MAX_LEN];
    CHECK_EQ(token_issue(key, "myapp", T0 + 30, tok, sizeof tok), 0);
    size_t len = strlen(tok);
    /* truncated, extended, padded, with whitespace */
    CHECK_EQ(token_verify(key, tok, len - 1, T0, name, 64), -EINVAL);
    CHECK_EQ(token_verify(key, tok, len - 4, T0, name, 64), -EINVAL);
    char t[TOKEN_MAX_LEN + 8];
    memcpy(t, tok, len);
    memcpy(t + len, "AAAA", 5);
    CHECK_EQ(verify(t, T0, name), -EINVAL);
    memcpy(t + len, "=", 2);
    CHECK_EQ(verify(t, T0, name), -EINVAL);
    memcpy(t + len, "\n", 2);
    CHECK_EQ(verify(t, T0, name), -EINVAL);
    /* longer than TOKEN_MAX_LEN */
    char big[400];
    memset(big, 'A', sizeof big);
    CHECK_EQ(token_verify(key, big, sizeof big, T0, name, 64), -EINVAL);

    /* wrong version, wrong name length (well-formed base64, valid MAC shape) */
    uint8_t bin[200];
    size_t bl;
    CHECK_EQ(sodium_base642bin(bin, sizeof bin, tok, len, NULL, &bl, NULL,
                               sodium_base64_VARIANT_URLSAFE_NO_PADDING),
             0);
    char t2[TOKEN_MAX_LEN];
    bin[0] = 2;
    sodium_bin2base64(t2, sizeof t2, bin, bl, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    CHECK_EQ(verify(t2, T0, name), -EINVAL);
    bin[0] = 1;
    bin[9] = 6;
    sodium_bin2base64(t2, sizeof t2, bin, bl, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    CHECK_EQ(verify(t2, T0, name), -EINVAL);
    bin[9] = 0;
    sodium_bin2base64(t2, sizeof t2, bin, bl, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    CHECK_EQ(verify(t2, T0, name), -EINVAL);

    /* a correctly signed token carrying an invalid name is still refused */
    uint8_t forged[1 + 8 + 1 + 3 + 16 + 32] = {1,    0,    0, 0,   0,   0xff, 0xff,
                                               0xff, 0xff, 3, 'A', '_', 'b'};
    crypto_auth(forged + 1 + 8 + 1 + 3 + 16, forged, 1 + 8 + 1 + 3 + 16, key);
    sodium_bin2base64(t2, sizeof t2, forged, sizeof forged,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    CHECK_EQ(verify(t2, T0, name), -EINVAL);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    randombytes_buf(key, sizeof key);
    memcpy(key2, key, sizeof key);
    key2[31] ^= 0x80;
    test_roundtrip();
    test_issue_errors();
    test_wrong_key_tamper();
    test_expired();
    test_garbage();
    return check_done();
}
