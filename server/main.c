/*
 * tunneld: the Warren edge. Thin: parse and validate the configuration, pick
 * the auth policy, create the edge, run it, tear it down. `tunneld keys add`
 * manages the keys file.
 */
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "auth.h"
#include "config.h"
#include "edge.h"
#include "keys.h"
#include "log.h"

static int keys_main(int argc, char **argv)
{
    const char *file = NULL, *label = NULL;
    if (argc < 2 || strcmp(argv[1], "add") != 0) {
        fprintf(stderr, "usage: tunneld keys add FILE [--label TEXT]\n");
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--label") == 0 && i + 1 < argc) {
            label = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "tunneld keys add: unknown flag %s\n", argv[i]);
            return 2;
        } else if (!file) {
            file = argv[i];
        } else {
            fprintf(stderr, "tunneld keys add: unexpected argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    if (!file) {
        fprintf(stderr, "tunneld keys add: FILE is required\n");
        return 2;
    }
    if (label && (strchr(label, '\n') || strlen(label) > 64)) {
        fprintf(stderr, "tunneld keys add: --label must be one line of at most 64 bytes\n");
        return 2;
    }
    char key[KEY_TEXT_LEN + 1], line[256];
    if (keys_generate(key, sizeof key, line, sizeof line, label) < 0) {
        fprintf(stderr, "tunneld keys add: could not generate a key\n");
        return 1;
    }
    int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "tunneld keys add: %s: %s\n", file, strerror(errno));
        return 1;
    }
    size_t n = strlen(line);
    if (write(fd, line, n) != (ssize_t)n || close(fd) < 0) {
        fprintf(stderr, "tunneld keys add: %s: %s\n", file, strerror(errno));
        return 1;
    }
    printf("%s\n", key);
    fprintf(stderr, "tunneld: key added to %s (only its hash is stored: keep the key now)\n", file);
    sodium_memzero(key, sizeof key);
    return 0;
}

int main(int argc, char **argv)
{
    /* Stream buffers come and go with every request: keep freed heap for
     * reuse instead of returning it to the kernel each time (a brk() per
     * request otherwise); at most a few MiB stay unused. */
    mallopt(M_TRIM_THRESHOLD, 4 << 20);
    mallopt(M_TOP_PAD, 1 << 20);
    if (sodium_init() < 0) {
        fprintf(stderr, "tunneld: libsodium failed to initialise\n");
        return 1;
    }
    if (argc >= 2 && strcmp(argv[1], "keys") == 0)
        return keys_main(argc - 1, argv + 1);
    static struct config cfg;
    /* Signals wait (blocked) until the loop can take them as events. */
    sigset_t stop_sigs;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGHUP);
    sigprocmask(SIG_BLOCK, &stop_sigs, NULL);
    int r = config_load(&cfg, argc, argv);
    if (r == 1)
        return 0;
    if (r < 0)
        return 2;
    log_init("tunneld", cfg.log_level);
    struct auth *auth = cfg.keys_file[0] ? auth_new_keys_file(cfg.keys_file) : auth_new_open();
    if (!auth)
        return 2;
    if (cfg.check_only) {
        printf("configuration ok: domain %s, %u listener(s), auth %s, secret %s\n", cfg.domain,
               cfg.nlisten, auth_name(auth), cfg.secret_given ? "given" : "random");
        auth_free(auth);
        return 0;
    }
    if (!cfg.secret_given)
        log_warnx("no --secret-file or TUNNELD_SECRET: using a random secret, so tunnel names "
                  "will not survive a restart of this edge");
    struct edge *e = edge_new(&cfg);
    if (!e) {
        auth_free(auth);
        return 1;
    }
    e->auth = auth;
    log_info("edge up: domain %s, auth %s", cfg.domain, auth_name(auth));
    r = edge_run(e);
    edge_free(e);
    sodium_memzero(&cfg, sizeof cfg);
    return r < 0 ? 1 : 0;
}
