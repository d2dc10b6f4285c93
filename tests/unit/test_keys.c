/*
 * test_keys: generate a key, put its line in a keys file, parse it back and
 * check the key; wrong and malformed keys are refused; malformed files are
 * reported with the line number of the first bad line, duplicates included.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "check.h"
#include "keys.h"

#define HASH_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static keyset *parse(const char *s, unsigned *line)
{
    return keyset_parse(s, strlen(s), line);
}

/* err_line of a file that must fail; 9999 if it parsed. */
static unsigned bad_line(const char *s)
{
    unsigned line = 12345;
    keyset *k = parse(s, &line);
    if (k) {
        keyset_free(k);
        return 9999;
    }
    return line;
}

static void test_generate_roundtrip(void)
{
    char key[KEY_TEXT_LEN + 1], line[128];
    CHECK_EQ(keys_generate(key, sizeof key, line, sizeof line, "laptop of ana"), 0);
    CHECK_EQ(strlen(key), KEY_TEXT_LEN);
    CHECK(strncmp(key, "wk_", 3) == 0);
    CHECK_EQ(key[11], '_');
    CHECK_EQ(strspn(key + 3, "0123456789abcdef"), 8);
    CHECK_EQ(strspn(key + 12, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
             43);
    /* line: id, hash of the key text, label, newline; never the secret */
    CHECK(strncmp(line, key + 3, 8) == 0);
    CHECK_EQ(line[8], ' ');
    CHECK_EQ(line[strlen(line) - 1], '\n');
    CHECK(strstr(line, " laptop of ana\n") != NULL);
    CHECK(strstr(line, key + 12) == NULL);
    uint8_t h[32];
    char hex[65];
    crypto_generichash(h, 32, (const unsigned char *)key, KEY_TEXT_LEN, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, h, 32);
    CHECK(strncmp(line + 9, hex, 64) == 0);

    char key2[KEY_TEXT_LEN + 1], line2[128];
    CHECK_EQ(keys_generate(key2, sizeof key2, line2, sizeof line2, NULL), 0);
    CHECK(strcmp(key, key2) != 0);
    CHECK_EQ(strlen(line2), 8 + 1 + 64 + 1);

    char file[512];
    snprintf(file, sizeof file, "# warren keys\n\n%s%s", line, line2);
    unsigned el = 77;
    keyset *k = parse(file, &el);
    CHECK(k != NULL);
    CHECK_EQ(keyset_count(k), 2);
    CHECK_EQ(keyset_check(k, key, strlen(key)), 0);
    CHECK_EQ(keyset_check(k, key2, strlen(key2)), 0);

    /* wrong key: same id, other secret; other id; one character changed */
    char wrong[KEY_TEXT_LEN + 1];
    memcpy(wrong, key, sizeof wrong);
    wrong[20] = wrong[20] == 'A' ? 'B' : 'A';
    CHECK_EQ(keyset_check(k, wrong, strlen(wrong)), -EACCES);
    char other[KEY_TEXT_LEN + 1], oline[128];
    CHECK_EQ(keys_generate(other, sizeof other, oline, sizeof oline, NULL), 0);
    CHECK_EQ(keyset_check(k, other, strlen(other)), -EACCES);
    memcpy(wrong, key2, sizeof wrong);
    memcpy(wrong + 3, key + 3, 8); /* key's id with key2's secret */
    CHECK_EQ(keyset_check(k, wrong, strlen(wrong)), -EACCES);

    /* malformed keys */
    CHECK_EQ(keyset_check(k, key, strlen(key) - 1), -EACCES);
    CHECK_EQ(keyset_check(k, "", 0), -EACCES);
    CHECK_EQ(keyset_check(k, "wk_", 3), -EACCES);
    memcpy(wrong, key, sizeof wrong);
    wrong[0] = 'W';
    CHECK_EQ(keyset_check(k, wrong, KEY_TEXT_LEN), -EACCES);
    memcpy(wrong, key, sizeof wrong);
    wrong[11] = '-';
    CHECK_EQ(keyset_check(k, wrong, KEY_TEXT_LEN), -EACCES);
    memcpy(wrong, key, sizeof wrong);
    wrong[20] = '=';
    CHECK_EQ(keyset_check(k, wrong, KEY_TEXT_LEN), -EACCES);
    char longer[KEY_TEXT_LEN + 2];
    memcpy(longer, key, KEY_TEXT_LEN);
    longer[KEY_TEXT_LEN] = 'A';
    longer[KEY_TEXT_LEN + 1] = '\0';
    CHECK_EQ(keyset_check(k, longer, KEY_TEXT_LEN + 1), -EACCES);
    /* needs no NUL: the key followed by other bytes */
    CHECK_EQ(keyset_check(k, longer, KEY_TEXT_LEN), 0);
    CHECK_EQ(keyset_check(NULL, key, strlen(key)), -EACCES);
    keyset_free(k);
    keyset_free(NULL);
}

static void test_generate_errors(void)
{
    char key[KEY_TEXT_LEN + 1], line[128];
    CHECK_EQ(keys_generate(key, KEY_TEXT_LEN, line, sizeof line, NULL), -ENOSPC);
    CHECK_EQ(keys_generate(key, sizeof key, line, 70, NULL), -ENOSPC);
    CHECK_EQ(keys_generate(key, sizeof key, line, sizeof line, "bad\nlabel"), -EINVAL);
    char big[100];
    memset(big, 'x', 99);
    big[99] = '\0';
    CHECK_EQ(keys_generate(key, sizeof key, line, sizeof line, big), -ENOSPC);
    char huge_line[256];
    CHECK_EQ(keys_generate(key, sizeof key, huge_line, sizeof huge_line, big), 0);
}

static void test_file_syntax(void)
{
    unsigned el = 5;
    keyset *k;
    /* empty file, comments only, CRLF, blanks, tabs, uppercase hash */
    k = parse("", &el);
    CHECK(k != NULL);
    CHECK_EQ(keyset_count(k), 0);
    keyset_free(k);
    k = parse("# only a comment\n   \n\t# indented comment\n", &el);
    CHECK(k != NULL);
    CHECK_EQ(keyset_count(k), 0);
    keyset_free(k);
    k = parse("0000000a " HASH_A "\r\n"
              "  0000000b\t" HASH_A "  label with spaces # and hash  \r\n"
              "0000000c 0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789ABCDEF",
              &el);
    CHECK(k != NULL);
    CHECK_EQ(keyset_count(k), 3);
    keyset_free(k);
    /* no NUL needed: parse a prefix only */
    const char *two = "0000000a " HASH_A "\nGARBAGE";
    k = keyset_parse(two, strlen(two) - 7, &el);
    CHECK(k != NULL);
    CHECK_EQ(keyset_count(k), 1);
    keyset_free(k);
}

static void test_file_errors(void)
{
    /* line numbers are 1-based and count blank and comment lines */
    CHECK_EQ(bad_line("garbage\n"), 1);
    CHECK_EQ(bad_line("# c\n\n0000000a\n"), 3);
    CHECK_EQ(bad_line("0000000a " HASH_A "\n0000000G " HASH_A "\n"), 2);
    CHECK_EQ(bad_line("0000000A " HASH_A "\n"), 1);              /* id upper case */
    CHECK_EQ(bad_line("000000a " HASH_A "\n"), 1);               /* id short */
    CHECK_EQ(bad_line("000000000a " HASH_A "\n"), 1);            /* id long */
    CHECK_EQ(bad_line("0000000a " HASH_A "0\n"), 1);             /* hash long */
    CHECK_EQ(bad_line("0000000a 0123456789abcdef\n"), 1);        /* hash short */
    CHECK_EQ(bad_line("0000000a " HASH_A "\x01label\n"), 1);     /* no separator */
    CHECK_EQ(bad_line("0000000a " HASH_A " bad\x1blabel\n"), 1); /* control char */
    CHECK_EQ(bad_line("0000000a\n"), 1);                         /* no hash */
    CHECK_EQ(bad_line("0000000a" HASH_A "\n"), 1);               /* no blank */
    CHECK_EQ(bad_line("wk_0000000a " HASH_A "\n"), 1);           /* a key, not an id */
    CHECK_EQ(bad_line("\n\n\n\n0000000z " HASH_A), 5);           /* last line, no newline */
    CHECK_EQ(bad_line("0000000a " HASH_A "\n0000000b x" HASH_A "\n"), 2);
    const char nul_file[] = "0000000a " HASH_A "\n00000\0000b " HASH_A "\n";
    unsigned el = 0;
    CHECK(keyset_parse(nul_file, sizeof nul_file - 1, &el) == NULL);
    CHECK_EQ(el, 2);

    /* duplicates: the second occurrence is the bad line */
    CHECK_EQ(bad_line("0000000a " HASH_A "\n0000000b " HASH_A "\n# x\n0000000a " HASH_A "\n"), 4);
    /* the first bad line wins, whether duplicate or malformed */
    CHECK_EQ(bad_line("0000000a " HASH_A "\n0000000a " HASH_A "\nbad\n"), 2);
    CHECK_EQ(bad_line("0000000a " HASH_A "\nbad\n0000000a " HASH_A "\n"), 2);
    CHECK_EQ(bad_line("0000000c " HASH_A "\n0000000b " HASH_A "\n0000000b " HASH_A "\n"
                      "0000000c " HASH_A "\n"),
             3);
    /* same hash under two ids is allowed (ids are the key) */
    CHECK_EQ(bad_line("0000000a " HASH_A "\n0000000b " HASH_A "\n"), 9999);

    /* an over-long line, even a comment */
    char longl[1100];
    memset(longl, '#', sizeof longl - 1);
    longl[sizeof longl - 1] = '\0';
    CHECK_EQ(bad_line(longl), 1);

    /* NULL err_line is allowed */
    CHECK(keyset_parse("bad", 3, NULL) == NULL);
}

static void test_load(void)
{
    char key[KEY_TEXT_LEN + 1], line[128];
    CHECK_EQ(keys_generate(key, sizeof key, line, sizeof line, "ci"), 0);
    char path[] = "/tmp/test_keys_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, line, strlen(line)), (long)strlen(line));
    close(fd);
    unsigned el = 9;
    keyset *k = keyset_load(path, &el);
    CHECK(k != NULL);
    CHECK_EQ(keyset_count(k), 1);
    CHECK_EQ(keyset_check(k, key, strlen(key)), 0);
    keyset_free(k);

    fd = open(path, O_WRONLY | O_APPEND);
    CHECK_EQ(write(fd, "oops\n", 5), 5);
    close(fd);
    errno = 0;
    CHECK(keyset_load(path, &el) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(el, 2);
    unlink(path);

    errno = 0;
    el = 9;
    CHECK(keyset_load("/nonexistent/warren-keys", &el) == NULL);
    CHECK_EQ(errno, ENOENT);
    CHECK_EQ(el, 0);
    errno = 0;
    CHECK(keyset_load("/tmp", &el) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(el, 0);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    test_generate_roundtrip();
    test_generate_errors();
    test_file_syntax();
    test_file_errors();
    test_load();
    return check_done();
}
