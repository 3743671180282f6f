/* A lean WebSocket load client for benchmarks/ws.py (--c-clients): thousands of connections in one
 * process on epoll, so that on a small machine the load generator does not take the cores the gateway is
 * measured on. It does what benchmarks/ws_load.py's light LeanClient does, in C:
 *   - upgrade with `Authorization: Bearer <token>`, send one masked subscribe message per connection
 *     (the lines of <subs_file>, already JSON), wait for `subscribed`;
 *   - for each `prices` frame: count its updates (one `"seq":` each) and give every one the latency of the
 *     frame's first (oldest) update: now - its `ts` (an upper bound), written as float32 ms to <lat_file>;
 *   - answer pings, count `lagged` notices (and their `dropped`), `error` frames and disconnects.
 * Protocol with the parent on stdio: prints "READY <connected> <failed>" once every connection is
 * subscribed or failed, then runs until a line arrives on stdin, then prints one JSON line of counts.
 *
 *   cc -O2 -o ws_cload ws_cload.c && ws_cload 127.0.0.1 8765 <token> subs.txt lat.f32
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { S_CONNECTING, S_HANDSHAKE, S_SUBSCRIBING, S_READY, S_CLOSED };

typedef struct {
    int fd, state;
    char *buf;
    size_t len, cap;
    const char *sub;
    size_t sublen;
} conn_t;

static long long delivered, frames, lagged, dropped_n, errors, disconnects, failed, ready_n;
static FILE *latf;
static char hostport[128], token[8192];

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int num(const char *p, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) v = v * 10 + (p[i] - '0');
    return v;
}

/* "2026-11-23T05:14:25.123456Z" or "+00:00" (UTC, as the pipeline writes it) -> epoch seconds */
static double parse_ts(const char *p, const char *end) {
    if (end - p < 19) return 0;
    struct tm tm = {0};
    tm.tm_year = num(p, 4) - 1900;
    tm.tm_mon = num(p + 5, 2) - 1;
    tm.tm_mday = num(p + 8, 2);
    tm.tm_hour = num(p + 11, 2);
    tm.tm_min = num(p + 14, 2);
    tm.tm_sec = num(p + 17, 2);
    double t = (double)timegm(&tm);
    const char *q = p + 19;
    if (q < end && *q == '.') {
        double scale = 0.1;
        for (q++; q < end && *q >= '0' && *q <= '9'; q++, scale /= 10) t += (*q - '0') * scale;
    }
    return t;
}

static void send_frame(conn_t *c, int opcode, const char *payload, size_t n) {
    unsigned char head[14];
    size_t hl = 0;
    head[hl++] = 0x80 | opcode;
    if (n < 126) {
        head[hl++] = 0x80 | n;
    } else if (n < 65536) {
        head[hl++] = 0x80 | 126;
        head[hl++] = n >> 8;
        head[hl++] = n & 0xff;
    } else {
        head[hl++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) head[hl++] = (n >> (8 * i)) & 0xff;
    }
    unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy(head + hl, mask, 4);
    hl += 4;
    char *out = malloc(hl + n);
    memcpy(out, head, hl);
    for (size_t i = 0; i < n; i++) out[hl + i] = payload[i] ^ mask[i & 3];
    size_t off = 0;
    while (off < hl + n) {  /* small control frames: the socket buffer takes them */
        ssize_t w = write(c->fd, out + off, hl + n - off);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            break;
        }
        off += w;
    }
    free(out);
}

static void close_conn(conn_t *c, int ep) {
    if (c->state == S_CLOSED) return;
    if (c->state == S_READY) disconnects++;
    else failed++;
    c->state = S_CLOSED;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

/* The value of the top-level "type" (the first key in every frame), with or without spaces after ':'. */
static int msg_type_is(const char *p, size_t n, const char *want) {
    const char *t = memmem(p, n < 64 ? n : 64, "\"type\"", 6);
    if (!t) return 0;
    const char *end = p + n, *q = t + 6;
    while (q < end && (*q == ':' || *q == ' ')) q++;
    size_t wl = strlen(want);
    return q < end && *q == '"' && (size_t)(end - q - 1) > wl && memcmp(q + 1, want, wl) == 0 && q[1 + wl] == '"';
}

static void on_text(conn_t *c, const char *p, size_t n) {
    const char *end = p + n;
    if (msg_type_is(p, n, "prices")) {
        long long k = 0;
        const char *q = p;
        while ((q = memmem(q, end - q, "\"seq\":", 6)) != NULL) { k++; q += 6; }
        const char *t = memmem(p, n, "\"ts\":", 5);
        frames++;
        delivered += k;
        if (t && k) {
            t += 5;
            while (t < end && (*t == ' ' || *t == '"')) t++;
            const char *te = memchr(t, '"', end - t);
            float ms = (float)((now_s() - parse_ts(t, te ? te : end)) * 1000.0);
            for (long long i = 0; i < k; i++) fwrite(&ms, sizeof ms, 1, latf);
        }
        return;
    }
    if (msg_type_is(p, n, "subscribed")) {
        if (c->state == S_SUBSCRIBING) { c->state = S_READY; ready_n++; }
    } else if (msg_type_is(p, n, "lagged")) {
        lagged++;
        const char *d = memmem(p, n, "\"dropped\":", 10);
        if (d) dropped_n += strtoll(d + 10, NULL, 10);
    } else if (msg_type_is(p, n, "error")) {
        errors++;
    }
}

static void on_readable(conn_t *c, int ep) {
    for (;;) {
        if (c->cap - c->len < 65536) {
            c->cap = c->cap * 2 + 65536;
            c->buf = realloc(c->buf, c->cap);
        }
        ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (r == 0) { close_conn(c, ep); return; }
        if (r < 0) {
            if (errno == EAGAIN) break;
            if (errno == EINTR) continue;
            close_conn(c, ep);
            return;
        }
        c->len += r;
    }
    size_t pos = 0;
    if (c->state == S_HANDSHAKE) {
        char *e = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!e) return;
        if (c->len < 12 || memcmp(c->buf, "HTTP/1.1 101", 12) != 0) { close_conn(c, ep); return; }
        pos = (e - c->buf) + 4;
        c->state = S_SUBSCRIBING;
        send_frame(c, 1, c->sub, c->sublen);
    }
    while (c->len - pos >= 2) {
        unsigned char *h = (unsigned char *)c->buf + pos;
        uint64_t n = h[1] & 0x7f;
        size_t hl = 2;
        if (n == 126) {
            if (c->len - pos < 4) break;
            n = ((uint64_t)h[2] << 8) | h[3];
            hl = 4;
        } else if (n == 127) {
            if (c->len - pos < 10) break;
            n = 0;
            for (int i = 0; i < 8; i++) n = (n << 8) | h[2 + i];
            hl = 10;
        }
        if (c->len - pos < hl + n) break;
        int op = h[0] & 0x0f;
        const char *payload = c->buf + pos + hl;
        if (op == 1) on_text(c, payload, n);
        else if (op == 9) send_frame(c, 10, payload, n);
        else if (op == 8) { close_conn(c, ep); return; }
        pos += hl + n;
    }
    memmove(c->buf, c->buf + pos, c->len - pos);
    c->len -= pos;
}

static void start_handshake(conn_t *c) {
    char req[9000];
    int n = snprintf(req, sizeof req,
                     "GET /v1 HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                     "Authorization: Bearer %s\r\n\r\n", hostport, token);
    if (write(c->fd, req, n) != n) { c->state = S_CLOSED; failed++; close(c->fd); return; }
    c->state = S_HANDSHAKE;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s host port token subs_file lat_file\n", argv[0]);
        return 2;
    }
    snprintf(hostport, sizeof hostport, "%s:%s", argv[1], argv[2]);
    snprintf(token, sizeof token, "%s", argv[3]);
    FILE *sf = fopen(argv[4], "r");
    latf = fopen(argv[5], "wb");
    if (!sf || !latf) { perror("open"); return 2; }
    setvbuf(latf, NULL, _IOFBF, 1 << 20);
    size_t cap = 1024, nconn = 0;
    conn_t *conns = calloc(cap, sizeof *conns);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t ll;
    while ((ll = getline(&line, &lcap, sf)) > 0) {
        while (ll && (line[ll - 1] == '\n' || line[ll - 1] == '\r')) line[--ll] = 0;
        if (!ll) continue;
        if (nconn == cap) { cap *= 2; conns = realloc(conns, cap * sizeof *conns); }
        memset(&conns[nconn], 0, sizeof *conns);
        conns[nconn].sub = strdup(line);
        conns[nconn].sublen = ll;
        conns[nconn].fd = -1;
        nconn++;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);  /* stdin: a line means stop */
    struct epoll_event evs[512];
    size_t next = 0;
    int announced = 0, stop = 0;
    double t_start = now_s();
    while (!stop) {
        /* keep at most 256 connections opening at once */
        while (next < nconn && (long long)(next - ready_n - failed) < 256) {
            conn_t *c = &conns[next++];
            c->fd = socket(AF_INET, SOCK_STREAM, 0);
            int one = 1;
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
                close(c->fd); c->state = S_CLOSED; failed++; continue;
            }
            start_handshake(c);
            if (c->state == S_CLOSED) continue;
            fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
            struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
        }
        if (!announced && next == nconn && (long long)nconn == ready_n + failed) {
            printf("READY %lld %lld\n", ready_n, failed);
            fflush(stdout);
            announced = 1;
        }
        if (!announced && now_s() - t_start > 300) {
            printf("READY %lld %lld\n", ready_n, (long long)nconn - ready_n);
            fflush(stdout);
            announced = 1;
        }
        int k = epoll_wait(ep, evs, 512, 100);
        for (int i = 0; i < k; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c == NULL) { stop = 1; continue; }
            if (c->state != S_CLOSED) on_readable(c, ep);
        }
    }
    fflush(latf);
    fclose(latf);
    printf("{\"delivered\": %lld, \"frames\": %lld, \"lagged\": %lld, \"dropped\": %lld, \"errors\": %lld, "
           "\"disconnects\": %lld, \"connected\": %lld, \"failed\": %lld}\n",
           delivered, frames, lagged, dropped_n, errors, disconnects, ready_n, failed);
    fflush(stdout);
    return 0;
}
