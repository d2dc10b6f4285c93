/*
 * replay_main: runs a fuzz target over every file of a corpus directory, so
 * that the checked-in corpora are replayed by every `meson test --suite fuzz`
 * without libFuzzer. Exits non-zero if the directory is missing or empty; a
 * crash or sanitizer report fails the test by itself.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    uint8_t *data = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *n = realloc(data, cap);
            if (!n) {
                free(data);
                fclose(f);
                return -1;
            }
            data = n;
        }
        size_t r = fread(data + len, 1, cap - len, f);
        if (r == 0)
            break;
        len += r;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    /* absolute, so a target may change the working directory (fuzz_config) */
    char *dir = realpath(argv[1], NULL);
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d) {
        perror(argv[1]);
        free(dir);
        return 1;
    }
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (replay_file(path) < 0) {
            closedir(d);
            free(dir);
            return 1;
        }
        n++;
    }
    closedir(d);
    free(dir);
    printf("replayed %u inputs from %s\n", n, argv[1]);
    return n ? 0 : 1;
}
