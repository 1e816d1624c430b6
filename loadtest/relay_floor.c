/*
 * relay_floor: the least a DNS relay can do per query, to measure what the relay hop itself
 * costs on this machine (loadtest/relay_floor.sh builds and runs it; nothing else uses it).
 *
 * Plain DNS over TCP in (the two-octet length prefix, no TLS, no HTTP), plain DNS over UDP out to
 * one backend, answers back on the connection that asked, out of order. One thread, one epoll
 * set, level-triggered; each wake-up reads each ready socket once, so a query costs the fewest
 * system calls any relay can make when queries arrive one at a time: epoll_wait, read, send to
 * the backend; epoll_wait, recv from the backend, write to the client. No timeouts, no limits, no
 * checks beyond what keeps it from crashing: a measuring instrument, not a server.
 *
 *   relay_floor LISTEN_PORT BACKEND_PORT     (both on 127.0.0.1)
 *
 * On SIGTERM it prints "queries=N answers=N wakeups=N" on stderr and exits.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FD 65536
#define CONN_BUF (2 + 65535)

struct conn {
    size_t have;
    uint8_t buf[CONN_BUF];
};

/* The relay's ID for a query -> the connection and the client's own ID. A ring of 65,536: an
 * answer later than 65,536 queries finds its slot taken and goes to the wrong place, which at
 * these rates (and a backend that answers in well under a second) does not happen. */
struct slot {
    int fd;
    uint16_t id;
};

static struct conn *conns[MAX_FD];
static struct slot slots[65536];
static volatile sig_atomic_t stop;
static unsigned long long queries, answers, wakeups;

static void on_term(int sig) {
    (void)sig;
    stop = 1;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static void close_conn(int ep, int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    free(conns[fd]);
    conns[fd] = NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: relay_floor LISTEN_PORT BACKEND_PORT\n");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int one = 1;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in la = loopback(atoi(argv[1]));
    if (bind(lfd, (struct sockaddr *)&la, sizeof la) || listen(lfd, 4096)) die("listen");

    int ufd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in ba = loopback(atoi(argv[2]));
    if (connect(ufd, (struct sockaddr *)&ba, sizeof ba)) die("connect to the backend");

    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.fd = ufd;
    epoll_ctl(ep, EPOLL_CTL_ADD, ufd, &ev);

    static uint8_t answer[2 + 65535];
    uint16_t next_id = 0;
    struct epoll_event events[256];
    while (!stop) {
        int n = epoll_wait(ep, events, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        wakeups++;
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                if (c < 0 || c >= MAX_FD) {
                    if (c >= 0) close(c);
                    continue;
                }
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                conns[c] = calloc(1, sizeof(struct conn));
                ev.data.fd = c;
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
            } else if (fd == ufd) {
                ssize_t len = recv(ufd, answer + 2, sizeof answer - 2, 0);
                if (len < 12) continue;
                uint16_t id = (uint16_t)(answer[2] << 8 | answer[3]);
                struct slot *s = &slots[id];
                if (!conns[s->fd]) continue;
                answer[0] = (uint8_t)(len >> 8);
                answer[1] = (uint8_t)len;
                answer[2] = (uint8_t)(s->id >> 8);
                answer[3] = (uint8_t)s->id;
                /* Blocking is not handled: a client that stops reading loses answers. */
                if (write(s->fd, answer, (size_t)len + 2) > 0) answers++;
            } else {
                struct conn *c = conns[fd];
                ssize_t got = read(fd, c->buf + c->have, CONN_BUF - c->have);
                if (got <= 0) {
                    if (got < 0 && errno == EAGAIN) continue;
                    close_conn(ep, fd);
                    continue;
                }
                c->have += (size_t)got;
                size_t at = 0;
                while (c->have - at >= 2) {
                    size_t len = (size_t)(c->buf[at] << 8 | c->buf[at + 1]);
                    if (c->have - at < 2 + len) break;
                    uint8_t *msg = c->buf + at + 2;
                    if (len >= 12) {
                        uint16_t id = next_id++;
                        slots[id].fd = fd;
                        slots[id].id = (uint16_t)(msg[0] << 8 | msg[1]);
                        msg[0] = (uint8_t)(id >> 8);
                        msg[1] = (uint8_t)id;
                        if (send(ufd, msg, len, 0) > 0) queries++;
                    }
                    at += 2 + len;
                }
                memmove(c->buf, c->buf + at, c->have - at);
                c->have -= at;
            }
        }
    }
    fprintf(stderr, "queries=%llu answers=%llu wakeups=%llu\n", queries, answers, wakeups);
    return 0;
}
