/*
 * test_buf: the bounded chunk queue: caps and "would block", reserve/commit
 * across chunk boundaries, peek/consume, fd I/O through a socketpair and a
 * pipe, and that an empty buffer keeps no chunk memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "check.h"

static void fill_pattern(uint8_t *p, size_t n, size_t start)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((start + i) * 7 + 3);
}

static int check_pattern(const uint8_t *p, size_t n, size_t start)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)((start + i) * 7 + 3))
            return 0;
    return 1;
}

/* Drain b through peek/consume, checking the byte pattern; returns bytes seen. */
static size_t drain_check(buf *b, size_t start, int *ok)
{
    size_t seen = 0;
    size_t n;
    const uint8_t *p;
    *ok = 1;
    while ((p = buf_peek(b, &n)) != NULL) {
        if (n == 0 || !check_pattern(p, n, start + seen))
            *ok = 0;
        buf_consume(b, n);
        seen += n;
    }
    return seen;
}

static void test_new_free(void)
{
    CHECK(buf_new(0, 0) == NULL);
    buf_free(NULL);
    buf *b = buf_new(100, 0);
    CHECK(b != NULL);
    CHECK_EQ(buf_len(b), 0);
    CHECK_EQ(buf_cap(b), 100);
    CHECK_EQ(buf_room(b), 100);
    CHECK(buf_empty(b));
    size_t n = 99;
    CHECK(buf_peek(b, &n) == NULL);
    CHECK_EQ(n, 0);
    buf_free(b);
}

static void test_append_cap(void)
{
    buf *b = buf_new(10, 4);
    uint8_t data[16];
    fill_pattern(data, sizeof data, 0);

    CHECK_EQ(buf_append(b, data, 0), 0);
    CHECK(buf_empty(b));
    CHECK_EQ(buf_append(b, data, 6), 0);
    CHECK_EQ(buf_len(b), 6);
    CHECK_EQ(buf_room(b), 4);
    /* over the cap: all or nothing */
    CHECK_EQ(buf_append(b, data + 6, 5), -EAGAIN);
    CHECK_EQ(buf_len(b), 6);
    CHECK_EQ(buf_append(b, data + 6, 4), 0);
    CHECK_EQ(buf_len(b), 10);
    CHECK_EQ(buf_room(b), 0);
    CHECK_EQ(buf_append(b, data, 1), -EAGAIN);
    size_t n = 0;
    CHECK(buf_reserve(b, &n) == NULL);
    CHECK_EQ(n, 0);

    /* first contiguous region is one chunk (4 bytes) */
    const uint8_t *p = buf_peek(b, &n);
    CHECK(p != NULL);
    CHECK_EQ(n, 4);
    CHECK(check_pattern(p, n, 0));

    uint8_t out[16];
    CHECK_EQ(buf_copyout(b, out, sizeof out), 10);
    CHECK(check_pattern(out, 10, 0));
    CHECK_EQ(buf_copyout(b, out, 5), 5);
    CHECK_EQ(buf_len(b), 10); /* copyout does not consume */

    /* consume across a chunk boundary */
    buf_consume(b, 5);
    CHECK_EQ(buf_len(b), 5);
    CHECK_EQ(buf_room(b), 5);
    p = buf_peek(b, &n);
    CHECK_EQ(n, 3);
    CHECK(check_pattern(p, n, 5));
    int ok;
    CHECK_EQ(drain_check(b, 5, &ok), 5);
    CHECK(ok);
    CHECK(buf_empty(b));
    CHECK(buf_peek(b, &n) == NULL);
    buf_free(b);
}

static void test_set_cap(void)
{
    buf *b = buf_new(8, 0);
    uint8_t data[8] = {0};
    CHECK_EQ(buf_append(b, data, 8), 0);
    buf_set_cap(b, 4);
    CHECK_EQ(buf_cap(b), 4);
    CHECK_EQ(buf_room(b), 0);
    CHECK_EQ(buf_append(b, data, 1), -EAGAIN);
    buf_consume(b, 4);
    CHECK_EQ(buf_room(b), 0);
    buf_consume(b, 1);
    CHECK_EQ(buf_room(b), 1);
    buf_set_cap(b, 100);
    CHECK_EQ(buf_room(b), 97);
    CHECK_EQ(buf_append(b, data, 8), 0);
    CHECK_EQ(buf_len(b), 11);
    buf_free(b);
}

static void test_reserve_commit(void)
{
    buf *b = buf_new(20, 8);
    size_t n = 0;
    uint8_t *p = buf_reserve(b, &n);
    CHECK(p != NULL);
    CHECK_EQ(n, 8); /* "as much as fits" is limited by the chunk */
    CHECK(buf_empty(b));
    fill_pattern(p, 5, 0);
    buf_commit(b, 5);
    CHECK_EQ(buf_len(b), 5);

    /* remaining space in the tail chunk is 3 */
    n = 0;
    p = buf_reserve(b, &n);
    CHECK_EQ(n, 3);
    fill_pattern(p, 3, 5);
    buf_commit(b, 3);

    /* tail full: a new chunk, limited by the request */
    n = 2;
    p = buf_reserve(b, &n);
    CHECK_EQ(n, 2);
    fill_pattern(p, 2, 8);
    buf_commit(b, 2);

    /* limited by room (20 - 10 = 10) and chunk space (6) */
    n = 100;
    p = buf_reserve(b, &n);
    CHECK_EQ(n, 6);
    fill_pattern(p, 6, 10);
    buf_commit(b, 6);
    n = 0;
    p = buf_reserve(b, &n);
    CHECK_EQ(n, 4); /* room left */
    fill_pattern(p, 4, 16);
    buf_commit(b, 4);
    CHECK_EQ(buf_len(b), 20);
    n = 0;
    CHECK(buf_reserve(b, &n) == NULL);

    uint8_t out[20];
    CHECK_EQ(buf_copyout(b, out, 20), 20);
    CHECK(check_pattern(out, 20, 0));
    int ok;
    CHECK_EQ(drain_check(b, 0, &ok), 20);
    CHECK(ok);

    /* commit less than reserved, and commit 0 */
    n = 0;
    p = buf_reserve(b, &n);
    CHECK(p != NULL);
    buf_commit(b, 0);
    CHECK(buf_empty(b));
    n = 0;
    p = buf_reserve(b, &n);
    fill_pattern(p, 1, 0);
    buf_commit(b, 1);
    CHECK_EQ(buf_len(b), 1);
    buf_free(b);
}

/* Small cap: chunks are no bigger than the cap. */
static void test_small_cap(void)
{
    buf *b = buf_new(3, 0);
    size_t n = 0;
    uint8_t *p = buf_reserve(b, &n);
    CHECK(p != NULL);
    CHECK_EQ(n, 3);
    buf_commit(b, 3);
    buf_consume(b, 2);
    CHECK_EQ(buf_room(b), 2);
    n = 0;
    p = buf_reserve(b, &n);
    CHECK(p != NULL); /* tail chunk is full: a fresh one */
    CHECK_EQ(n, 2);
    buf_commit(b, 2);
    CHECK_EQ(buf_len(b), 3);
    buf_free(b);
}

/* Many appends and consumes of odd sizes keep the byte order. */
static void test_stream_order(void)
{
    buf *b = buf_new(1000, 64);
    uint8_t tmp[300];
    size_t written = 0, readpos = 0;
    int ok_all = 1;
    for (int round = 0; round < 500; round++) {
        size_t n = (size_t)(round * 37 % 251) + 1;
        if (n <= buf_room(b)) {
            fill_pattern(tmp, n, written);
            if (buf_append(b, tmp, n) != 0)
                ok_all = 0;
            written += n;
        } else {
            CHECK_EQ(buf_append(b, tmp, n), -EAGAIN);
        }
        size_t c = (size_t)(round * 53 % 199);
        if (c > buf_len(b))
            c = buf_len(b);
        size_t got = buf_copyout(b, tmp, c);
        if (got != c || !check_pattern(tmp, c, readpos))
            ok_all = 0;
        buf_consume(b, c);
        readpos += c;
        if (buf_len(b) != written - readpos)
            ok_all = 0;
    }
    CHECK(ok_all);
    int ok;
    CHECK_EQ(drain_check(b, readpos, &ok), written - readpos);
    CHECK(ok);
    buf_free(b);
}

static void test_clear(void)
{
    buf *b = buf_new(100, 10);
    uint8_t data[50] = {1};
    CHECK_EQ(buf_append(b, data, 50), 0);
    buf_clear(b);
    CHECK(buf_empty(b));
    CHECK_EQ(buf_room(b), 100);
    size_t n;
    CHECK(buf_peek(b, &n) == NULL);
    CHECK_EQ(buf_append(b, data, 50), 0);
    CHECK_EQ(buf_len(b), 50);
    buf_free(b);
}

/* Heap bytes in use (glibc). Sanitizers replace malloc, so the check is
 * skipped there; the plain build runs it. */
#if defined(__SANITIZE_ADDRESS__)
#define HEAP_ACCOUNTING 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HEAP_ACCOUNTING 0
#endif
#endif
#ifndef HEAP_ACCOUNTING
#define HEAP_ACCOUNTING 1
#endif

static size_t heap_in_use(void)
{
    return mallinfo2().uordblks;
}

static void test_empty_frees_chunks(void)
{
    if (!HEAP_ACCOUNTING)
        return;
    buf *b = buf_new(1 << 20, 16384);
    size_t base = heap_in_use();
    static uint8_t data[200000];
    CHECK_EQ(buf_append(b, data, sizeof data), 0);
    CHECK(heap_in_use() >= base + sizeof data);
    buf_consume(b, sizeof data - 1);
    CHECK(heap_in_use() < base + 16384 + 1024); /* one chunk left */
    buf_consume(b, 1);
    CHECK(heap_in_use() <= base);

    /* a reservation committed with 0 bytes leaves nothing behind */
    size_t n = 0;
    CHECK(buf_reserve(b, &n) != NULL);
    CHECK(heap_in_use() >= base + 16384);
    buf_commit(b, 0);
    CHECK(heap_in_use() <= base);

    /* same after reading through reserve/commit and draining */
    n = 0;
    uint8_t *p = buf_reserve(b, &n);
    memset(p, 'x', 10);
    buf_commit(b, 10);
    buf_consume(b, 10);
    CHECK(heap_in_use() <= base);
    buf_free(b);
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void test_fd_socketpair(void)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    set_nonblock(sv[0]);
    set_nonblock(sv[1]);
    buf *b = buf_new(100000, 4096);

    /* empty buffer writes nothing */
    CHECK_EQ(buf_write_fd(b, sv[0]), 0);
    /* nothing to read yet */
    CHECK_EQ(buf_read_fd(b, sv[1], 0), -EAGAIN);
    CHECK(buf_empty(b));

    uint8_t *data = malloc(100000);
    fill_pattern(data, 100000, 0);
    CHECK_EQ(buf_append(b, data, 30000), 0);
    ssize_t w = buf_write_fd(b, sv[0]);
    CHECK_EQ(w, 30000); /* spans 8 chunks: one writev */
    CHECK(buf_empty(b));

    buf *r = buf_new(100000, 4096);
    /* max limits one call */
    CHECK_EQ(buf_read_fd(r, sv[1], 100), 100);
    CHECK_EQ(buf_len(r), 100);
    ssize_t got = buf_read_fd(r, sv[1], 0);
    CHECK_EQ(got, 29900);
    CHECK_EQ(buf_read_fd(r, sv[1], 0), -EAGAIN);
    int ok;
    CHECK_EQ(drain_check(r, 0, &ok), 30000);
    CHECK(ok);

    /* a full buffer reads nothing and says "would block" */
    buf *small = buf_new(10, 0);
    CHECK_EQ(buf_append(b, data, 20), 0);
    CHECK_EQ(buf_write_fd(b, sv[0]), 20);
    CHECK_EQ(buf_read_fd(small, sv[1], 0), 10);
    CHECK_EQ(buf_read_fd(small, sv[1], 0), -EAGAIN);
    CHECK_EQ(buf_len(small), 10);
    buf_consume(small, 10);
    CHECK_EQ(buf_read_fd(small, sv[1], 0), 10);
    CHECK_EQ(drain_check(small, 10, &ok), 10);
    CHECK(ok);

    /* fill the socket until it would block: a partial write keeps the rest */
    size_t total_w = 0;
    ssize_t rc;
    for (;;) {
        if (buf_room(b) >= 50000)
            buf_append(b, data, 50000);
        rc = buf_write_fd(b, sv[0]);
        if (rc < 0)
            break;
        total_w += (size_t)rc;
    }
    CHECK_EQ(rc, -EAGAIN);
    CHECK(!buf_empty(b));
    size_t left = buf_len(b);
    /* reading it all back empties the socket */
    size_t total_r = 0;
    buf *sink = buf_new(1 << 20, 0);
    while ((rc = buf_read_fd(sink, sv[1], 0)) > 0) {
        total_r += (size_t)rc;
        buf_clear(sink);
    }
    CHECK_EQ(total_r, total_w);
    CHECK_EQ(buf_len(b), left);

    /* EOF, and -EPIPE (not SIGPIPE) after the peer is gone */
    buf_clear(b);
    CHECK_EQ(buf_append(b, data, 5), 0);
    CHECK_EQ(buf_write_fd(b, sv[0]), 5);
    shutdown(sv[0], SHUT_WR);
    CHECK_EQ(buf_read_fd(sink, sv[1], 0), 5); /* bytes first, EOF next call */
    CHECK_EQ(buf_read_fd(sink, sv[1], 0), 0);
    close(sv[1]);
    CHECK_EQ(buf_append(b, data, 5), 0);
    rc = buf_write_fd(b, sv[0]);
    CHECK(rc == -EPIPE || rc == -ECONNRESET);
    CHECK_EQ(buf_len(b), 5);

    /* bad fd */
    CHECK_EQ(buf_read_fd(sink, -1, 0), -EBADF);
    CHECK_EQ(buf_write_fd(b, -1), -EBADF);
    /* the failed read left no chunk behind: still empty and usable */
    buf_clear(sink);
    CHECK(buf_empty(sink));

    close(sv[0]);
    free(data);
    buf_free(b);
    buf_free(r);
    buf_free(small);
    buf_free(sink);
}

static void test_fd_pipe(void)
{
    int pfd[2];
    CHECK_EQ(pipe(pfd), 0);
    set_nonblock(pfd[0]);
    set_nonblock(pfd[1]);
    buf *b = buf_new(64, 16);
    uint8_t data[64];
    fill_pattern(data, sizeof data, 0);
    CHECK_EQ(buf_append(b, data, 64), 0);
    CHECK_EQ(buf_write_fd(b, pfd[1]), 64); /* pipes are not sockets: writev */
    CHECK(buf_empty(b));
    CHECK_EQ(buf_read_fd(b, pfd[0], 0), 64);
    int ok;
    CHECK_EQ(drain_check(b, 0, &ok), 64);
    CHECK(ok);
    close(pfd[1]);
    CHECK_EQ(buf_read_fd(b, pfd[0], 0), 0);
    CHECK(buf_empty(b));
    close(pfd[0]);
    buf_free(b);
}

/* On a blocking fd a short read ends the call: it must not wait for more. */
static void test_fd_blocking(void)
{
    int pfd[2];
    CHECK_EQ(pipe(pfd), 0);
    buf *b = buf_new(100000, 1024);
    CHECK_EQ(write(pfd[1], "0123456789", 10), 10);
    alarm(5); /* a hang fails the test instead of stalling it */
    CHECK_EQ(buf_read_fd(b, pfd[0], 0), 10);
    /* a write that fills exactly one chunk, then more: still no extra wait */
    uint8_t data[1500];
    fill_pattern(data, sizeof data, 0);
    CHECK_EQ(write(pfd[1], data, sizeof data), (long)sizeof data);
    buf_clear(b);
    ssize_t got = 0, r;
    while (got < (ssize_t)sizeof data && (r = buf_read_fd(b, pfd[0], 0)) > 0)
        got += r;
    CHECK_EQ(got, (long)sizeof data);
    alarm(0);
    int ok;
    CHECK_EQ(drain_check(b, 0, &ok), sizeof data);
    CHECK(ok);
    close(pfd[0]);
    close(pfd[1]);
    buf_free(b);
}

/* buf_move hands over whole chunks (at least half full) and copies the rest,
 * never beyond dst's room, keeping the byte order. */
static void test_move(void)
{
    uint8_t *data = malloc(100000);
    fill_pattern(data, 100000, 0);
    buf *src = buf_new(100000, 4096), *dst = buf_new(10000, 4096);
    CHECK_EQ(buf_append(src, data, 1000), 0); /* a chunk a quarter full: copied */
    CHECK_EQ(buf_move(dst, src, 0), 1000);
    CHECK(buf_empty(src));
    CHECK_EQ(buf_append(src, data + 1000, 20000), 0);
    CHECK_EQ(buf_move(dst, src, 0), 9000); /* dst's room */
    CHECK_EQ(buf_len(dst), 10000);
    CHECK_EQ(buf_len(src), 11000);
    CHECK_EQ(buf_move(dst, src, 0), 0); /* full */
    int ok;
    CHECK_EQ(drain_check(dst, 0, &ok), 10000);
    CHECK(ok);
    CHECK_EQ(buf_move(dst, src, 5), 5); /* max */
    CHECK_EQ(buf_move(dst, src, 0), 10000 - 5);
    CHECK_EQ(drain_check(dst, 10000, &ok), 10000);
    CHECK(ok);
    CHECK_EQ(buf_move(dst, src, 0), 1000);
    CHECK_EQ(drain_check(dst, 20000, &ok), 1000);
    CHECK(ok);
    CHECK(buf_empty(src));
    /* appending after a move keeps going in order, in either buffer */
    CHECK_EQ(buf_append(src, data, 6000), 0);
    CHECK_EQ(buf_move(dst, src, 0), 6000);
    CHECK_EQ(buf_append(src, data + 6000, 100), 0);
    CHECK_EQ(buf_append(dst, data + 6000, 100), 0);
    CHECK_EQ(drain_check(dst, 0, &ok), 6100);
    CHECK(ok);
    CHECK_EQ(drain_check(src, 6000, &ok), 100);
    CHECK(ok);
    buf_free(src);
    buf_free(dst);
    free(data);
}

struct seen_log {
    uint8_t bytes[100000];
    size_t len, calls;
};

static void seen_fn(void *ud, const uint8_t *p, size_t n)
{
    struct seen_log *l = ud;
    memcpy(l->bytes + l->len, p, n);
    l->len += n;
    l->calls++;
}

/* readv into several chunks at once, writev without consuming: each region
 * is told to `seen`, in order, and *offered says what was on offer. */
static void test_readv_writev_peek(void)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    set_nonblock(sv[0]);
    set_nonblock(sv[1]);
    static struct seen_log wlog, rlog;
    uint8_t *data = malloc(100000);
    fill_pattern(data, 100000, 0);
    buf *b = buf_new(100000, 4096);
    CHECK_EQ(buf_append(b, data, 30000), 0);
    size_t offered = 0;
    ssize_t w = buf_writev_peek(b, sv[0], 10000, &offered, seen_fn, &wlog);
    CHECK_EQ(w, 10000);
    CHECK_EQ(offered, 10000);
    CHECK_EQ(buf_len(b), 30000); /* not consumed */
    CHECK_EQ(wlog.len, 10000);
    CHECK(wlog.calls >= 3); /* 4 KiB chunks */
    CHECK(check_pattern(wlog.bytes, wlog.len, 0));
    buf_consume(b, (size_t)w);
    w = buf_writev_peek(b, sv[0], 0, &offered, seen_fn, &wlog);
    CHECK_EQ(w, 20000);
    CHECK_EQ(offered, 20000);
    buf_consume(b, (size_t)w);
    CHECK(check_pattern(wlog.bytes, wlog.len, 0));
    CHECK_EQ(buf_writev_peek(b, sv[0], 0, &offered, NULL, NULL), 0);
    CHECK_EQ(offered, 0);

    buf *r = buf_new(100000, 4096);
    CHECK_EQ(buf_append(r, data, 100), 0); /* the tail chunk has room: used first */
    ssize_t n = buf_readv_fd(r, sv[1], 0, &offered, seen_fn, &rlog);
    CHECK(n > 4096 - 100); /* more than the tail's room: several regions */
    CHECK(offered >= (size_t)n);
    size_t total = (size_t)n;
    while ((n = buf_readv_fd(r, sv[1], 0, &offered, seen_fn, &rlog)) > 0)
        total += (size_t)n;
    CHECK_EQ(n, -EAGAIN);
    CHECK_EQ(total, 30000);
    CHECK_EQ(rlog.len, 30000);
    CHECK(check_pattern(rlog.bytes, rlog.len, 0));
    int ok;
    CHECK_EQ(buf_copyout(r, data + 50000, 100), 100);
    buf_consume(r, 100);
    CHECK_EQ(drain_check(r, 0, &ok), 30000);
    CHECK(ok);
    /* a full buffer: -EAGAIN, nothing read; EOF: 0 */
    buf *small = buf_new(10, 0);
    CHECK_EQ(buf_append(small, data, 10), 0);
    CHECK_EQ(buf_readv_fd(small, sv[1], 0, &offered, NULL, NULL), -EAGAIN);
    close(sv[0]);
    buf_clear(small);
    CHECK_EQ(buf_readv_fd(small, sv[1], 0, &offered, NULL, NULL), 0);
    CHECK(buf_empty(small));
    buf_free(small);
    buf_free(r);
    buf_free(b);
    close(sv[1]);
    free(data);
}

int main(void)
{
    test_new_free();
    test_append_cap();
    test_set_cap();
    test_reserve_commit();
    test_small_cap();
    test_stream_order();
    test_clear();
    test_empty_frees_chunks();
    test_fd_socketpair();
    test_fd_pipe();
    test_fd_blocking();
    test_move();
    test_readv_writev_peek();
    return check_done();
}
