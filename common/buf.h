/*
 * buf: a bounded byte queue made of a chain of fixed-size chunks.
 *
 * Every place where bytes wait (socket to stream, stream to socket) uses one
 * of these. Invariants: buf_len() <= cap at all times; appending past the cap
 * fails with -EAGAIN ("would block") and writes nothing; an empty buf holds no
 * chunk memory (idle connections cost only the struct). Readers peek at the
 * first contiguous region and consume without copying; socket reads use
 * reserve (contiguous space in the tail chunk), read(), commit.
 */
#ifndef WARREN_BUF_H
#define WARREN_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct buf buf;

/* New empty buffer holding at most `cap` bytes, in chunks of `chunk` bytes
 * (chunk 0 means 16 KiB). Returns NULL on allocation failure or cap == 0. */
buf *buf_new(size_t cap, size_t chunk);
/* Free the buffer and all its chunks. Accepts NULL. */
void buf_free(buf *b);

size_t buf_len(const buf *b);
size_t buf_cap(const buf *b);
/* cap - len: how many more bytes may be appended. */
size_t buf_room(const buf *b);
bool buf_empty(const buf *b);
/* Change the cap (may be below the current length: then no room until drained). */
void buf_set_cap(buf *b, size_t cap);

/* Contiguous writable space at the tail: returns a pointer to at least 1 and
 * at most min(*len, room, chunk space) bytes and stores that count in *len.
 * *len == 0 on input means "as much as fits". Returns NULL (and *len = 0) when
 * the buffer is full or memory is exhausted. Nothing is added until buf_commit. */
uint8_t *buf_reserve(buf *b, size_t *len);
/* Add n bytes written into the last reservation (n <= reserved length). */
void buf_commit(buf *b, size_t n);

/* Append all n bytes or nothing: 0, or -EAGAIN when n > room, -ENOMEM. */
int buf_append(buf *b, const void *p, size_t n);

/* First contiguous readable region; *len gets its size (0 when empty, then
 * NULL is returned). The pointer stays valid until the next consume/free. */
const uint8_t *buf_peek(const buf *b, size_t *len);
/* Move up to max bytes (0: as many as fit) from the front of src to the end
 * of dst, handing whole chunks over instead of copying them. Returns the
 * bytes moved (fewer when dst is full, src runs out, or memory does). */
size_t buf_move(buf *dst, buf *src, size_t max);
/* Copy up to n bytes from the front into dst without consuming; returns count. */
size_t buf_copyout(const buf *b, void *dst, size_t n);
/* Drop n bytes (n <= len) from the front; emptied chunks are freed. */
void buf_consume(buf *b, size_t n);
/* Drop everything. */
void buf_clear(buf *b);

/* read() from fd into free space, at most `max` bytes (0: up to room), using
 * reserve/commit. Returns bytes read (>0), 0 at EOF, -EAGAIN when the buffer
 * is full or the fd would block, or another negative errno. */
ssize_t buf_read_fd(buf *b, int fd, size_t max);
/* Told of each region a read or write below moved, in order. */
typedef void (*buf_seen_fn)(void *ud, const uint8_t *p, size_t n);

/* One readv() into free space: the tail chunk's and a few fresh chunks', at
 * most `max` bytes (0: up to room). Returns bytes read (>0), 0 at EOF,
 * -EAGAIN when the buffer is full or the fd would block, or another negative
 * errno. *offered gets the bytes offered to readv (fewer read: the fd is
 * drained for now); seen (may be NULL) gets each region read. */
ssize_t buf_readv_fd(buf *b, int fd, size_t max, size_t *offered, buf_seen_fn seen, void *ud);
/* One writev() of at most `limit` bytes (0: all) from the front, without
 * consuming them (the caller consumes what was written). Returns bytes
 * written (0 when empty), -EAGAIN when the fd would block, or another
 * negative errno; *offered gets the bytes offered, seen each region written. */
ssize_t buf_writev_peek(const buf *b, int fd, size_t limit, size_t *offered, buf_seen_fn seen,
                        void *ud);
/* write() queued bytes to fd (writev over chunks) and consume what was
 * written. Returns bytes written (>= 0, 0 when empty), -EAGAIN when the fd
 * would block, or another negative errno (e.g. -EPIPE). */
ssize_t buf_write_fd(buf *b, int fd);

#endif
