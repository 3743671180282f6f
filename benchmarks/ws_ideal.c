/* An ideal fan-out server for benchmarks/ws_ideal.py: the least work any WebSocket gateway can do for
 * scenario (a) of benchmarks/ws.py, in C, so that "can this machine meet the target at all?" has a
 * measured answer that does not depend on our Python.
 *
 * It does only what cannot be avoided: accept, upgrade, read one subscribe message per connection (the
 * exact text names its group: matching was precomputed by the driver with the gateway's own filters),
 * and, every batch window, append each due update to the groups it matches and write each dirty group's
 * frame (built once, shared by its members) to every member: one write() per client per window. No NATS,
 * no JSON parsing, no Python. Each update carries `ts` = the time it was due (rate schedule), so the
 * clients' latency includes the wait for the batch window, as with the real gateway.
 *
 *   cc -O2 -o ws_ideal ws_ideal.c -lcrypto
 *   ws_ideal <port> <procs> <batch_ms> <rate> <groups_file> <updates_file>
 *     groups_file:  one line per group: the subscribe message text exactly as the client sends it
 *     updates_file: one line per update: "<g>,<g>,...\t<update JSON up to and including "ts":">
 * stdin/stdout with the driver: prints LISTENING; "GO" starts the schedule in every process; "STOP"
 * ends it: every process prints one JSON line of its counts and its CPU time since GO, then the parent
 * prints DONE.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { C_HANDSHAKE, C_SUBSCRIBING, C_READY, C_CLOSED };

typedef struct conn {
    int fd, state, group;
    char *in;
    size_t in_len, in_cap;
    char *out;  /* what the socket did not take yet */
    size_t out_len, out_cap, out_off;
} conn_t;

typedef struct {
    char *text;
    size_t text_len;
    conn_t **members;
    size_t n, cap;
    char *pending;
    size_t p_len, p_cap;
    int n_pending, dirty;
} group_t;

typedef struct {
    int *groups, n_groups;
    char *prefix;
    size_t prefix_len;
} update_t;

static group_t *groups;
static size_t n_groups;
static update_t *updates;
static size_t n_updates;
static volatile sig_atomic_t go_flag, stop_flag;
static long long frames, deliveries, bytes_out, partial_writes, eagain_frames;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void grow(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    *buf = realloc(*buf, c);
    *cap = c;
}

static void append(char **buf, size_t *len, size_t *cap, const void *p, size_t n) {
    grow(buf, cap, *len + n);
    memcpy(*buf + *len, p, n);
    *len += n;
}

static size_t frame_head(unsigned char *h, size_t n) {
    h[0] = 0x81;
    if (n < 126) { h[1] = n; return 2; }
    if (n < 65536) { h[1] = 126; h[2] = n >> 8; h[3] = n & 0xff; return 4; }
    h[1] = 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (n >> (8 * (7 - i))) & 0xff;
    return 10;
}

static void conn_close(conn_t *c, int ep) {
    if (c->state == C_CLOSED) return;
    c->state = C_CLOSED;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

/* Write what is owed first, then `p`; what the socket does not take waits for EPOLLOUT. */
static void conn_write(conn_t *c, int ep, const char *p, size_t n) {
    if (c->state == C_CLOSED) return;
    if (c->out_len > c->out_off) {
        append(&c->out, &c->out_len, &c->out_cap, p, n);
        eagain_frames++;
        return;
    }
    ssize_t w = write(c->fd, p, n);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR) { conn_close(c, ep); return; }
        w = 0;
    }
    bytes_out += w;
    if ((size_t)w < n) {
        partial_writes++;
        c->out_len = c->out_off = 0;
        append(&c->out, &c->out_len, &c->out_cap, p + w, n - w);
        struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
    }
}

static void conn_flush_out(conn_t *c, int ep) {
    while (c->out_len > c->out_off) {
        ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (w < 0) {
            if (errno == EAGAIN) return;
            if (errno == EINTR) continue;
            conn_close(c, ep);
            return;
        }
        bytes_out += w;
        c->out_off += w;
    }
    c->out_len = c->out_off = 0;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

static void send_text(conn_t *c, int ep, const char *p, size_t n) {
    unsigned char h[10];
    size_t hl = frame_head(h, n);
    char *f = malloc(hl + n);
    memcpy(f, h, hl);
    memcpy(f + hl, p, n);
    conn_write(c, ep, f, hl + n);
    free(f);
}

static void handshake(conn_t *c, int ep, const char *req, size_t n) {
    const char *k = memmem(req, n, "Sec-WebSocket-Key:", 18);
    if (!k) k = memmem(req, n, "sec-websocket-key:", 18);
    if (!k) { conn_close(c, ep); return; }
    k += 18;
    while (*k == ' ') k++;
    const char *e = memchr(k, '\r', req + n - k);
    char src[128];
    int kl = snprintf(src, sizeof src, "%.*s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", (int)(e - k), k);
    unsigned char sha[SHA_DIGEST_LENGTH];
    SHA1((unsigned char *)src, kl, sha);
    char acc[64];
    EVP_EncodeBlock((unsigned char *)acc, sha, SHA_DIGEST_LENGTH);
    char resp[256];
    int rl = snprintf(resp, sizeof resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", acc);
    conn_write(c, ep, resp, rl);
    c->state = C_SUBSCRIBING;
}

static int group_of(const char *p, size_t n) {
    for (size_t g = 0; g < n_groups; g++)
        if (groups[g].text_len == n && memcmp(groups[g].text, p, n) == 0) return (int)g;
    return -1;
}

static void on_message(conn_t *c, int ep, int op, char *p, size_t n) {
    if (op == 9) {  /* ping -> pong */
        unsigned char f[2 + 125];
        f[0] = 0x8a;
        f[1] = n;
        memcpy(f + 2, p, n);
        conn_write(c, ep, (char *)f, 2 + n);
    } else if (op == 8) {
        conn_close(c, ep);
    } else if (op == 1 && c->state == C_SUBSCRIBING) {
        int g = group_of(p, n);
        if (g < 0) {
            static const char err[] = "{\"type\": \"error\", \"code\": \"unknown_group\"}";
            send_text(c, ep, err, sizeof err - 1);
            return;
        }
        group_t *gr = &groups[g];
        if (gr->n == gr->cap) {
            gr->cap = gr->cap ? gr->cap * 2 : 8;
            gr->members = realloc(gr->members, gr->cap * sizeof *gr->members);
        }
        gr->members[gr->n++] = c;
        c->group = g;
        c->state = C_READY;
        static const char ok[] = "{\"type\": \"subscribed\", \"id\": \"s\"}";
        send_text(c, ep, ok, sizeof ok - 1);
    }
}

static void on_readable(conn_t *c, int ep) {
    for (;;) {
        grow(&c->in, &c->in_cap, c->in_len + 4096);
        ssize_t r = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
        if (r == 0) { conn_close(c, ep); return; }
        if (r < 0) {
            if (errno == EAGAIN) break;
            if (errno == EINTR) continue;
            conn_close(c, ep);
            return;
        }
        c->in_len += r;
    }
    size_t pos = 0;
    if (c->state == C_HANDSHAKE) {
        char *e = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (!e) return;
        handshake(c, ep, c->in, e - c->in);
        pos = (e - c->in) + 4;
    }
    while (c->state != C_CLOSED && c->in_len - pos >= 2) {
        unsigned char *h = (unsigned char *)c->in + pos;
        uint64_t n = h[1] & 0x7f;
        size_t hl = 2;
        if (n == 126) {
            if (c->in_len - pos < 4) break;
            n = ((uint64_t)h[2] << 8) | h[3];
            hl = 4;
        } else if (n == 127) {
            if (c->in_len - pos < 10) break;
            n = 0;
            for (int i = 0; i < 8; i++) n = (n << 8) | h[2 + i];
            hl = 10;
        }
        int masked = h[1] & 0x80;
        size_t ml = masked ? 4 : 0;
        if (c->in_len - pos < hl + ml + n) break;
        char *payload = c->in + pos + hl + ml;
        if (masked)
            for (size_t i = 0; i < n; i++) payload[i] ^= h[hl + (i & 3)];
        on_message(c, ep, h[0] & 0x0f, payload, n);
        pos += hl + ml + n;
    }
    if (c->state == C_CLOSED) return;
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
}

static void fmt_ts(double t, char *out) {  /* out: 96 bytes */  /* 2026-11-23T05:14:25.123456+00:00 */
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    int us = (int)((t - (double)s) * 1e6);
    snprintf(out, 96, "%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
            tm.tm_hour, tm.tm_min, tm.tm_sec, us);
}

/* Append the updates due by now to their groups, then write every dirty group's frame to its members. */
static void publish_round(int ep, double t0, double rate, size_t *next) {
    double now = now_s();
    size_t due = (size_t)((now - t0) * rate) + 1;
    if (due > n_updates) due = n_updates;
    char ts[96];
    int *dirty = malloc(sizeof(int) * (n_groups + 1));
    int nd = 0;
    for (; *next < due; (*next)++) {
        update_t *u = &updates[*next];
        fmt_ts(t0 + (double)*next / rate, ts);
        for (int i = 0; i < u->n_groups; i++) {
            group_t *g = &groups[u->groups[i]];
            if (!g->n) continue;
            if (!g->dirty) {
                g->dirty = 1;
                dirty[nd++] = u->groups[i];
                g->p_len = 0;
                g->n_pending = 0;
                static const char head[] = "{\"type\":\"prices\",\"updates\":[";
                append(&g->pending, &g->p_len, &g->p_cap, "          ", 10);  /* room for the frame header */
                append(&g->pending, &g->p_len, &g->p_cap, head, sizeof head - 1);
            } else {
                append(&g->pending, &g->p_len, &g->p_cap, ",", 1);
            }
            append(&g->pending, &g->p_len, &g->p_cap, u->prefix, u->prefix_len);
            append(&g->pending, &g->p_len, &g->p_cap, ts, strlen(ts));
            append(&g->pending, &g->p_len, &g->p_cap, "\"}", 2);
            g->n_pending++;
        }
    }
    for (int i = 0; i < nd; i++) {
        group_t *g = &groups[dirty[i]];
        append(&g->pending, &g->p_len, &g->p_cap, "]}", 2);
        size_t n = g->p_len - 10;
        unsigned char h[10];
        size_t hl = frame_head(h, n);
        char *f = g->pending + 10 - hl;
        memcpy(f, h, hl);
        for (size_t m = 0; m < g->n; m++) {
            conn_t *c = g->members[m];
            if (c->state != C_READY) continue;
            conn_write(c, ep, f, hl + n);
            frames++;
            deliveries += g->n_pending;
        }
        g->dirty = 0;
    }
    free(dirty);
}

static void on_sig(int s) {
    if (s == SIGUSR1) go_flag = 1;
    else stop_flag = 1;
}

static int serve(int lfd, int batch_ms, double rate) {
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event evs[1024];
    double t0 = 0, next_round = 0;
    size_t next = 0;
    int started = 0;
    struct rusage ru0 = {0}, ru;
    while (!stop_flag) {
        int timeout = 100;
        if (go_flag && !started) {
            started = 1;
            getrusage(RUSAGE_SELF, &ru0);  /* CPU from here on: the data path, not the connects */
            t0 = next_round = now_s();
        }
        if (started) {
            double wait = next_round - now_s();
            timeout = wait > 0 ? (int)(wait * 1000) + 1 : 0;
        }
        int k = epoll_wait(ep, evs, 1024, timeout);
        for (int i = 0; i < k; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c == NULL) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                    if (fd < 0) break;
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn_t *nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    nc->group = -1;
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                }
                continue;
            }
            if (c->state == C_CLOSED) continue;
            if (evs[i].events & EPOLLOUT) conn_flush_out(c, ep);
            if (c->state != C_CLOSED && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) on_readable(c, ep);
        }
        if (started && now_s() >= next_round && next < n_updates) {
            publish_round(ep, t0, rate, &next);
            /* the next window starts batch_ms after this one, or at once if this round ran over */
            next_round += batch_ms / 1000.0;
            if (next_round < now_s()) next_round = now_s();
        }
    }
    getrusage(RUSAGE_SELF, &ru);
    size_t members = 0;
    for (size_t g = 0; g < n_groups; g++) members += groups[g].n;
    printf("{\"pid\": %d, \"clients\": %zu, \"frames\": %lld, \"deliveries\": %lld, \"bytes\": %lld, "
           "\"partial_writes\": %lld, \"queued_frames\": %lld, \"updates_published\": %zu, "
           "\"cpu_user_s\": %.3f, \"cpu_sys_s\": %.3f}\n",
           getpid(), members, frames, deliveries, bytes_out, partial_writes, eagain_frames, next,
           (ru.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (ru.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6,
           (ru.ru_stime.tv_sec - ru0.ru_stime.tv_sec) + (ru.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6);
    fflush(stdout);
    return 0;
}

static void load(const char *gpath, const char *upath) {
    FILE *f = fopen(gpath, "r");
    if (!f) { perror(gpath); exit(2); }
    char *line = NULL;
    size_t lcap = 0, cap = 0;
    ssize_t ll;
    while ((ll = getline(&line, &lcap, f)) > 0) {
        while (ll && (line[ll - 1] == '\n' || line[ll - 1] == '\r')) line[--ll] = 0;
        if (n_groups == cap) { cap = cap ? cap * 2 : 256; groups = realloc(groups, cap * sizeof *groups); }
        memset(&groups[n_groups], 0, sizeof *groups);
        groups[n_groups].text = strndup(line, ll);
        groups[n_groups].text_len = ll;
        n_groups++;
    }
    fclose(f);
    f = fopen(upath, "r");
    if (!f) { perror(upath); exit(2); }
    cap = 0;
    while ((ll = getline(&line, &lcap, f)) > 0) {
        while (ll && (line[ll - 1] == '\n' || line[ll - 1] == '\r')) line[--ll] = 0;
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        if (n_updates == cap) { cap = cap ? cap * 2 : 1024; updates = realloc(updates, cap * sizeof *updates); }
        update_t *u = &updates[n_updates++];
        u->prefix = strdup(tab + 1);
        u->prefix_len = strlen(u->prefix);
        int n = tab > line ? 1 : 0;
        for (char *p = line; p < tab; p++) n += *p == ',';
        u->groups = malloc(sizeof(int) * (n + 1));
        u->n_groups = 0;
        for (char *p = line; p < tab;) {
            u->groups[u->n_groups++] = (int)strtol(p, &p, 10);
            if (*p == ',') p++;
        }
    }
    fclose(f);
    free(line);
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s port procs batch_ms rate groups_file updates_file\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]), procs = atoi(argv[2]), batch_ms = atoi(argv[3]);
    double rate = atof(argv[4]);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    load(argv[5], argv[6]);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_sig};
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    pid_t *kids = calloc(procs, sizeof *kids);
    for (int i = 0; i < procs; i++) {
        int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        int one = 1;
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4096) != 0) { perror("listen"); return 2; }
        fflush(stdout);
        kids[i] = fork();
        if (kids[i] == 0) return serve(lfd, batch_ms, rate);
        close(lfd);
    }
    printf("LISTENING\n");
    fflush(stdout);
    char cmd[64];
    while (fgets(cmd, sizeof cmd, stdin)) {
        int sig = strncmp(cmd, "GO", 2) == 0 ? SIGUSR1 : strncmp(cmd, "STOP", 4) == 0 ? SIGUSR2 : 0;
        for (int i = 0; sig && i < procs; i++) kill(kids[i], sig);
        if (sig == SIGUSR2) break;
    }
    for (int i = 0; i < procs; i++) waitpid(kids[i], NULL, 0);
    printf("DONE\n");
    fflush(stdout);
    return 0;
}
