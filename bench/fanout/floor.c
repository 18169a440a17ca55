/*
 * bench/fanout/floor.c: the physical floor of a delivery on loopback.
 *
 * A bare writer sends 160-byte messages round-robin to 1,000 connected
 * loopback TCP sockets (TCP_NODELAY, one write() per message, as a server
 * without coalescing does per delivery); a reader process on the other CPU
 * drains the peers with epoll. The writer's CPU time (getrusage: user +
 * system; on loopback the kernel charges most of the receive side's TCP
 * work to the sender too) divided by the number of writes is the floor a
 * server's CPU per delivery is compared with.
 *
 *   floor [--conns 1000] [--size 160] [--seconds 2] [--writer-cpu 0] [--reader-cpu 1]
 *   floor --relay RATE [--conns N] ...    (bench/run.sh passes --conns 5000)
 *
 * With --relay, the writer is a bare relay, the least any unicast hub can
 * do per delivery: the reader process also feeds it RATE messages/s over
 * one more loopback socket (paced like the benchmark's publisher: what is
 * due at each wake-up goes in one write), and the writer blocks in
 * epoll_wait on that socket, read()s what came, and write()s each message
 * to the next socket round-robin. Its CPU per write then holds the wake-up
 * and the read of the input that the plain floor leaves out, at the same
 * moderate rate the servers are measured at.
 *
 * Prints one JSON line on stdout and a summary on stderr. Bounded: the
 * measurement lasts --seconds after a 0.3 s warm-up; the reader is killed
 * at the end.
 */
#ifndef _GNU_SOURCE /* the CMake build passes -D_GNU_SOURCE */
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
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

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void
pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        fprintf(stderr, "floor: cannot pin to CPU %d: %s (continuing unpinned)\n", cpu, strerror(errno));
}

static void
die(const char *what)
{
    fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* The reader's side of --relay: drains the peers and, paced, feeds the
 * relay. Never returns. */
static void
reader_loop(int ep, int feed, double rate, int size, double seconds)
{
    static char buf[1 << 16];
    struct epoll_event ev[256];
    char *out = NULL;
    double t0 = now_s();
    long fed = 0;

    if (feed >= 0) {
        out = malloc((size_t)size * 64);
        memset(out, 'y', (size_t)size * 64);
    }
    alarm((unsigned)seconds + 30); /* never outlives the writer by much */
    for (;;) {
        int n = epoll_wait(ep, ev, 256, feed >= 0 ? 1 : 1000);
        for (int i = 0; i < n; i++)
            if (ev[i].data.fd != feed && read(ev[i].data.fd, buf, sizeof buf) == 0)
                _exit(0);
        if (feed >= 0) {
            long due = (long)((now_s() - t0) * rate) - fed;
            if (due > 64)
                due = 64;
            if (due > 0) {
                ssize_t w = write(feed, out, (size_t)due * (size_t)size);
                if (w > 0)
                    fed += w / size; /* the feed socket blocks: writes are whole */
            }
        }
    }
}

/* The relay's side: input from `in`, one write() per message, round-robin.
 * Returns the messages written before `until`. */
static long
relay_until(int in, int ep, int *wfd, int conns, int size, double until, long *reads, long *eagain)
{
    static char buf[1 << 16];
    static size_t have;
    static int k;
    struct epoll_event ev[4];
    long writes = 0;

    while (now_s() < until) {
        int n = epoll_wait(ep, ev, 4, 100);
        ssize_t r;
        size_t off = 0;
        if (n <= 0)
            continue;
        r = read(in, buf + have, sizeof buf - have);
        if (r == 0) {
            fprintf(stderr, "floor: the feeder closed its socket\n");
            exit(1);
        }
        if (r < 0)
            die("relay read");
        (*reads)++;
        have += (size_t)r;
        while (have - off >= (size_t)size) {
            ssize_t w = write(wfd[k], buf + off, (size_t)size);
            if (w == size)
                writes++;
            else if (w >= 0 || errno == EAGAIN)
                (*eagain)++; /* a full socket: reported, the report flags it */
            else
                die("write");
            off += (size_t)size;
            if (++k == conns)
                k = 0;
        }
        memmove(buf, buf + off, have - off);
        have -= off;
    }
    return writes;
}

int
main(int argc, char **argv)
{
    int conns = 1000, size = 160, wcpu = 0, rcpu = 1;
    double relay = 0;
    double seconds = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--conns"))
            conns = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size"))
            size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--writer-cpu"))
            wcpu = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reader-cpu"))
            rcpu = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--relay"))
            relay = atof(argv[i + 1]);
        else {
            fprintf(stderr, "usage: floor [--conns N] [--size B] [--seconds S] [--writer-cpu C] [--reader-cpu C] "
                            "[--relay RATE]\n");
            return 2;
        }
    }
    if (conns < 1 || size < 1 || size > 4096 || seconds <= 0 || seconds > 60 || relay < 0 || relay > 1e6) {
        fprintf(stderr, "floor: bad arguments\n");
        return 2;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)conns * 2 + 16 > rl.rlim_cur) {
        fprintf(stderr, "floor: %d connections need %d descriptors\n", conns, conns * 2 + 16);
        return 2;
    }

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4096) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) != 0)
        die("listen");
    int *wfd = calloc((size_t)conns, sizeof *wfd), *rfd = calloc((size_t)conns, sizeof *rfd);
    for (int i = 0; i < conns; i++) {
        wfd[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (wfd[i] < 0 || connect(wfd[i], (struct sockaddr *)&a, sizeof a) != 0)
            die("connect");
        rfd[i] = accept(lfd, NULL, NULL);
        if (rfd[i] < 0)
            die("accept");
        int one = 1;
        setsockopt(wfd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    /* the relay's input: feed[0] written by the reader process, feed[1] read */
    int feed[2] = {-1, -1};
    if (relay > 0) {
        feed[0] = socket(AF_INET, SOCK_STREAM, 0);
        if (feed[0] < 0 || connect(feed[0], (struct sockaddr *)&a, sizeof a) != 0)
            die("connect");
        feed[1] = accept(lfd, NULL, NULL);
        if (feed[1] < 0)
            die("accept");
    }
    close(lfd);

    pid_t reader = fork();
    if (reader < 0)
        die("fork");
    if (reader == 0) {
        pin(rcpu);
        for (int i = 0; i < conns; i++)
            close(wfd[i]);
        if (feed[1] >= 0)
            close(feed[1]);
        int ep = epoll_create1(0);
        for (int i = 0; i < conns; i++) {
            struct epoll_event e = {.events = EPOLLIN, .data.fd = rfd[i]};
            epoll_ctl(ep, EPOLL_CTL_ADD, rfd[i], &e);
        }
        reader_loop(ep, feed[0], relay, size, seconds);
    }
    pin(wcpu);
    for (int i = 0; i < conns; i++)
        close(rfd[i]);
    if (relay > 0) {
        close(feed[0]);
        int ep = epoll_create1(0);
        struct epoll_event e = {.events = EPOLLIN, .data.fd = feed[1]};
        if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, feed[1], &e) != 0)
            die("epoll");
        for (int i = 0; i < conns; i++)
            fcntl(wfd[i], F_SETFL, fcntl(wfd[i], F_GETFL) | O_NONBLOCK);
        long reads = 0, eagain = 0, w;
        relay_until(feed[1], ep, wfd, conns, size, now_s() + 0.3, &reads, &eagain);
        reads = eagain = 0;
        double t0 = now_s(), c0 = cpu_s();
        w = relay_until(feed[1], ep, wfd, conns, size, t0 + seconds, &reads, &eagain);
        double cpu = cpu_s() - c0, wall = now_s() - t0;
        if (w == 0) {
            fprintf(stderr, "floor: the relay wrote nothing\n");
            return 1;
        }
        printf("{\"kind\":\"relay_floor\",\"conns\":%d,\"size\":%d,\"rate\":%.0f,\"writes\":%ld,"
               "\"reads\":%ld,\"seconds\":%.3f,\"writes_per_s\":%.0f,\"cpu_s\":%.4f,\"cpu_pct\":%.1f,"
               "\"cpu_us_per_write\":%.3f,\"eagain\":%ld}\n",
               conns, size, relay, w, reads, wall, (double)w / wall, cpu, 100 * cpu / wall,
               cpu * 1e6 / (double)w, eagain);
        fprintf(stderr,
                "floor: relay of %.0f msg/s to %d loopback sockets: %ld writes, %ld reads in %.2f s, "
                "writer CPU %.0f%%, %.3f us per write (%ld EAGAIN)\n",
                relay, conns, w, reads, wall, 100 * cpu / wall, cpu * 1e6 / (double)w, eagain);
        for (int i = 0; i < conns; i++)
            close(wfd[i]);
        close(feed[1]);
        kill(reader, SIGTERM);
        waitpid(reader, NULL, 0);
        return 0;
    }
    for (int i = 0; i < conns; i++)
        fcntl(wfd[i], F_SETFL, fcntl(wfd[i], F_GETFL) | O_NONBLOCK);

    char *msg = malloc((size_t)size);
    memset(msg, 'x', (size_t)size);
    long writes = 0, eagain = 0;
    int k = 0;
    /* warm-up, then the measured run */
    for (int phase = 0; phase < 2; phase++) {
        double dur = phase == 0 ? 0.3 : seconds;
        double t0 = now_s(), c0 = cpu_s(), t;
        long w0 = writes;
        do {
            for (int j = 0; j < 1000; j++) {
                ssize_t n = write(wfd[k], msg, (size_t)size);
                if (n == size)
                    writes++;
                else if (n < 0 && errno == EAGAIN)
                    eagain++;
                else if (n < 0)
                    die("write");
                if (++k == conns)
                    k = 0;
            }
            t = now_s();
        } while (t - t0 < dur);
        if (phase == 1) {
            double cpu = cpu_s() - c0, wall = t - t0;
            long n = writes - w0;
            printf("{\"kind\":\"floor\",\"conns\":%d,\"size\":%d,\"writes\":%ld,\"seconds\":%.3f,"
                   "\"writes_per_s\":%.0f,\"cpu_s\":%.4f,\"cpu_pct\":%.1f,\"cpu_us_per_write\":%.3f,"
                   "\"eagain\":%ld}\n",
                   conns, size, n, wall, (double)n / wall, cpu, 100 * cpu / wall, cpu * 1e6 / (double)n,
                   eagain);
            fprintf(stderr,
                    "floor: %ld writes of %d bytes to %d loopback sockets in %.2f s: %.0f/s, writer CPU "
                    "%.0f%%, %.3f us per write (%ld EAGAIN)\n",
                    n, size, conns, wall, (double)n / wall, 100 * cpu / wall, cpu * 1e6 / (double)n, eagain);
        }
    }
    for (int i = 0; i < conns; i++)
        close(wfd[i]);
    kill(reader, SIGTERM);
    waitpid(reader, NULL, 0);
    return 0;
}
