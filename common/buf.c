/*
 * buf: bounded byte queue as a singly linked chain of chunks.
 *
 * Why: every socket-to-stream and stream-to-socket hop needs a queue whose
 * memory is bounded by a cap and which can be filled by read() and drained by
 * writev() without extra copies.
 *
 * Invariants:
 * - len == sum over chunks of (w - r), and len <= cap unless buf_set_cap()
 *   lowered the cap below the current length.
 * - Every chunk in the chain except possibly the tail holds at least one
 *   unread byte (r < w); a chunk is freed as soon as it is fully consumed. The
 *   tail may be empty only between buf_reserve() and buf_commit(): committing
 *   0 bytes into a fresh tail chunk frees it again, so once every reservation
 *   is committed an empty buf holds no chunk memory.
 * - A chunk's size is fixed at allocation: min(chunk size, cap at that time).
 * - A reservation stays valid until the next call that changes the buffer.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "buf.h"

#define BUF_DEFAULT_CHUNK (16 * 1024)
#define BUF_IOV_MAX 64
#define BUF_READV_MAX 4 /* regions per readv: 64 KiB of 16 KiB chunks */

struct chunk {
    struct chunk *next;
    size_t size; /* bytes of data[] */
    size_t r;    /* read offset */
    size_t w;    /* write offset */
    uint8_t data[];
};

struct buf {
    struct chunk *head;
    struct chunk *tail;
    size_t len;
    size_t cap;
    size_t chunk;
    size_t reserved; /* length of the outstanding reservation (0: none) */
};

buf *buf_new(size_t cap, size_t chunk)
{
    if (cap == 0)
        return NULL;
    buf *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->cap = cap;
    b->chunk = chunk ? chunk : BUF_DEFAULT_CHUNK;
    return b;
}

static void chunks_free(struct chunk *c)
{
    while (c) {
        struct chunk *next = c->next;
        free(c);
        c = next;
    }
}

void buf_free(buf *b)
{
    if (!b)
        return;
    chunks_free(b->head);
    free(b);
}

size_t buf_len(const buf *b)
{
    return b->len;
}

size_t buf_cap(const buf *b)
{
    return b->cap;
}

size_t buf_room(const buf *b)
{
    return b->len >= b->cap ? 0 : b->cap - b->len;
}

bool buf_empty(const buf *b)
{
    return b->len == 0;
}

void buf_set_cap(buf *b, size_t cap)
{
    b->cap = cap;
}

static size_t chunk_alloc_size(const buf *b)
{
    return b->cap < b->chunk ? b->cap : b->chunk;
}

static struct chunk *chunk_new(size_t size)
{
    struct chunk *c = malloc(sizeof *c + size);
    if (!c)
        return NULL;
    c->next = NULL;
    c->size = size;
    c->r = 0;
    c->w = 0;
    return c;
}

static void chain_append(buf *b, struct chunk *c)
{
    if (b->tail)
        b->tail->next = c;
    else
        b->head = c;
    b->tail = c;
}

/* Unlink and free the head chunk. */
static void drop_head(buf *b)
{
    struct chunk *c = b->head;
    b->head = c->next;
    if (!b->head)
        b->tail = NULL;
    free(c);
}

/* Free the tail chunk if it holds no bytes (an uncommitted fresh reservation). */
static void drop_empty_tail(buf *b)
{
    struct chunk *t = b->tail;
    if (!t || t->r < t->w)
        return;
    if (b->head == t) {
        b->head = b->tail = NULL;
        free(t);
        return;
    }
    struct chunk *c = b->head;
    while (c->next != t)
        c = c->next;
    c->next = NULL;
    b->tail = c;
    free(t);
}

uint8_t *buf_reserve(buf *b, size_t *len)
{
    size_t want = *len;
    size_t room = buf_room(b);
    *len = 0;
    b->reserved = 0;
    if (room == 0)
        return NULL;
    struct chunk *t = b->tail;
    if (!t || t->w == t->size) {
        t = chunk_new(chunk_alloc_size(b));
        if (!t)
            return NULL;
        chain_append(b, t);
    }
    size_t n = t->size - t->w;
    if (n > room)
        n = room;
    if (want && n > want)
        n = want;
    *len = n;
    b->reserved = n;
    return t->data + t->w;
}

void buf_commit(buf *b, size_t n)
{
    if (n > b->reserved)
        abort(); /* programmer error: committing more than was reserved */
    b->reserved = 0;
    if (n == 0) {
        drop_empty_tail(b);
        return;
    }
    b->tail->w += n;
    b->len += n;
}

int buf_append(buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (n > buf_room(b))
        return -EAGAIN;
    b->reserved = 0;
    /* Allocate every chunk needed first, so that failure changes nothing. */
    size_t tail_space = b->tail ? b->tail->size - b->tail->w : 0;
    struct chunk *fresh = NULL, *fresh_tail = NULL;
    size_t need = n > tail_space ? n - tail_space : 0;
    size_t csize = chunk_alloc_size(b);
    while (need > 0) {
        struct chunk *c = chunk_new(csize);
        if (!c) {
            chunks_free(fresh);
            return -ENOMEM;
        }
        if (fresh_tail)
            fresh_tail->next = c;
        else
            fresh = c;
        fresh_tail = c;
        need -= need < csize ? need : csize;
    }
    const uint8_t *src = p;
    size_t left = n;
    if (tail_space > 0) {
        size_t k = left < tail_space ? left : tail_space;
        memcpy(b->tail->data + b->tail->w, src, k);
        b->tail->w += k;
        src += k;
        left -= k;
    }
    while (fresh) {
        struct chunk *c = fresh;
        fresh = c->next;
        c->next = NULL;
        size_t k = left < c->size ? left : c->size;
        memcpy(c->data, src, k);
        c->w = k;
        src += k;
        left -= k;
        chain_append(b, c);
    }
    b->len += n;
    return 0;
}

const uint8_t *buf_peek(const buf *b, size_t *len)
{
    const struct chunk *c = b->head;
    if (b->len == 0 || !c) {
        *len = 0;
        return NULL;
    }
    *len = c->w - c->r;
    return c->data + c->r;
}

/* The readable regions from the front, at most `max` of them and `limit`
 * bytes in all, into iov; returns how many were filled, their total in *total. */
static int peekv(const buf *b, struct iovec *iov, int max, size_t limit, size_t *total)
{
    int n = 0;
    size_t bytes = 0;
    for (const struct chunk *c = b->head; c && n < max && bytes < limit; c = c->next) {
        size_t len = c->w - c->r;
        if (!len)
            continue;
        if (len > limit - bytes)
            len = limit - bytes;
        iov[n].iov_base = (void *)(c->data + c->r);
        iov[n].iov_len = len;
        bytes += len;
        n++;
    }
    *total = bytes;
    return n;
}

size_t buf_move(buf *dst, buf *src, size_t max)
{
    size_t room = buf_room(dst);
    if (max == 0 || max > room)
        max = room;
    size_t moved = 0;
    while (moved < max && src->len > 0) {
        struct chunk *c = src->head;
        size_t k = c->w - c->r;
        if (k <= max - moved && k >= c->size / 2 && dst->reserved == 0 && src->reserved == 0) {
            /* the whole chunk changes hands (only a chunk at least half full,
             * so chunk memory stays under twice the bytes held) */
            src->head = c->next;
            if (!src->head)
                src->tail = NULL;
            src->len -= k;
            c->next = NULL;
            chain_append(dst, c);
            dst->len += k;
            moved += k;
            continue;
        }
        size_t part = k < max - moved ? k : max - moved;
        if (buf_append(dst, c->data + c->r, part) < 0)
            break;
        buf_consume(src, part);
        moved += part;
    }
    return moved;
}

size_t buf_copyout(const buf *b, void *dst, size_t n)
{
    uint8_t *d = dst;
    size_t done = 0;
    for (const struct chunk *c = b->head; c && done < n; c = c->next) {
        size_t k = c->w - c->r;
        if (k > n - done)
            k = n - done;
        memcpy(d + done, c->data + c->r, k);
        done += k;
    }
    return done;
}

void buf_consume(buf *b, size_t n)
{
    if (n > b->len)
        abort(); /* programmer error: consuming more than is queued */
    b->reserved = 0;
    b->len -= n;
    while (n > 0) {
        struct chunk *c = b->head;
        size_t k = c->w - c->r;
        if (n < k) {
            c->r += n;
            return;
        }
        n -= k;
        drop_head(b);
    }
    /* A drained head that is also a fresh tail reservation: nothing else left. */
    if (b->len == 0 && b->head) {
        chunks_free(b->head);
        b->head = b->tail = NULL;
    }
}

void buf_clear(buf *b)
{
    chunks_free(b->head);
    b->head = b->tail = NULL;
    b->len = 0;
    b->reserved = 0;
}

ssize_t buf_read_fd(buf *b, int fd, size_t max)
{
    size_t room = buf_room(b);
    if (room == 0)
        return -EAGAIN;
    if (max == 0 || max > room)
        max = room;
    size_t total = 0;
    while (total < max) {
        size_t offered;
        ssize_t r = buf_readv_fd(b, fd, max - total, &offered, NULL, NULL);
        if (r <= 0) {
            if (total > 0)
                break; /* report EOF or the error on the next call */
            return r;
        }
        total += (size_t)r;
        if ((size_t)r < offered)
            break; /* short read: the fd is drained for now */
    }
    return (ssize_t)total;
}

ssize_t buf_readv_fd(buf *b, int fd, size_t max, size_t *offered, buf_seen_fn seen, void *ud)
{
    size_t room = buf_room(b);
    *offered = 0;
    b->reserved = 0;
    if (room == 0)
        return -EAGAIN;
    if (max == 0 || max > room)
        max = room;
    struct iovec iov[BUF_READV_MAX];
    struct chunk *fresh[BUF_READV_MAX];
    int n = 0, nfresh = 0;
    size_t want = 0;
    struct chunk *t = b->tail;
    bool into_tail = t && t->w < t->size;
    if (into_tail) {
        size_t k = t->size - t->w;
        iov[n++] = (struct iovec){.iov_base = t->data + t->w, .iov_len = k < max ? k : max};
        want += iov[0].iov_len;
    }
    size_t csize = chunk_alloc_size(b);
    while (want < max && n < BUF_READV_MAX) {
        struct chunk *c = chunk_new(csize);
        if (!c)
            break;
        fresh[nfresh++] = c;
        size_t k = csize < max - want ? csize : max - want;
        iov[n++] = (struct iovec){.iov_base = c->data, .iov_len = k};
        want += k;
    }
    if (n == 0)
        return -ENOMEM;
    ssize_t r;
    do
        r = readv(fd, iov, n);
    while (r < 0 && errno == EINTR);
    int used = 0;
    if (r > 0) {
        *offered = want;
        size_t left = (size_t)r;
        for (int i = 0; i < n && left > 0; i++) {
            size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
            struct chunk *c = into_tail && i == 0 ? t : fresh[used++];
            if (c != t)
                chain_append(b, c);
            c->w += k;
            b->len += k;
            if (seen)
                seen(ud, iov[i].iov_base, k);
            left -= k;
        }
    }
    for (int i = used; i < nfresh; i++)
        free(fresh[i]);
    if (r < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return r;
}

ssize_t buf_writev_peek(const buf *b, int fd, size_t limit, size_t *offered, buf_seen_fn seen,
                        void *ud)
{
    struct iovec iov[BUF_IOV_MAX];
    size_t total;
    int n = peekv(b, iov, BUF_IOV_MAX, limit ? limit : SIZE_MAX, &total);
    *offered = total;
    if (n == 0)
        return 0;
    ssize_t w;
    do
        w = writev(fd, iov, n);
    while (w < 0 && errno == EINTR);
    if (w < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    size_t left = (size_t)w;
    for (int i = 0; seen && i < n && left > 0; i++) {
        size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
        seen(ud, iov[i].iov_base, k);
        left -= k;
    }
    return w;
}

/* One writev()/sendmsg() over up to BUF_IOV_MAX chunks. Returns bytes written
 * or -errno. Sockets get MSG_NOSIGNAL so a closed peer is -EPIPE, not SIGPIPE. */
static ssize_t write_once(buf *b, int fd, size_t *batch)
{
    struct iovec iov[BUF_IOV_MAX];
    int n = 0;
    size_t bytes = 0;
    for (struct chunk *c = b->head; c && n < BUF_IOV_MAX; c = c->next) {
        if (c->w == c->r)
            continue;
        iov[n].iov_base = c->data + c->r;
        iov[n].iov_len = c->w - c->r;
        bytes += iov[n].iov_len;
        n++;
    }
    *batch = bytes;
    for (;;) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (w < 0 && errno == ENOTSOCK)
            w = writev(fd, iov, n);
        if (w >= 0)
            return w;
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

ssize_t buf_write_fd(buf *b, int fd)
{
    size_t total = 0;
    while (b->len > 0) {
        size_t batch;
        ssize_t w = write_once(b, fd, &batch);
        if (w < 0) {
            if (total > 0)
                break; /* report the error on the next call */
            return w;
        }
        buf_consume(b, (size_t)w);
        total += (size_t)w;
        if ((size_t)w < batch)
            break; /* the fd took less than offered: it is full for now */
    }
    return (ssize_t)total;
}
