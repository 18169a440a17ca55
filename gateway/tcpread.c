/*
 * gateway/tcpread.c: how many bytes of a TCP socket its reader (lws) has
 * taken from the kernel so far. http.c compares two of these to tell a
 * request lws parsed from its own buffer (no read in between) from one it
 * read fresh (docs/libraries.md, lws 4.1's body loop). Kept apart from the
 * lws headers: struct tcp_info with tcpi_bytes_received is <linux/tcp.h>'s.
 */
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#define GW_TCP_ESTABLISHED 1 /* <netinet/tcp.h>'s, which clashes with <linux/tcp.h> */

/* declared in http.h, which this file does not include (lws pulls in
 * <netinet/tcp.h>) */
long long gw__tcp_bytes_read(int fd, int upper);

long long
gw__tcp_bytes_read(int fd, int upper)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    int inq = 0;

    /* received = read + queued. Data that arrives between the two calls
     * counts in the second one only: queued first overstates what was
     * read (upper), received first understates it. A FIN counts in
     * received: only an established connection is measured. */
    if (fd < 0 || (upper && ioctl(fd, SIOCINQ, &inq) != 0))
        return -1;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received ||
        ti.tcpi_state != GW_TCP_ESTABLISHED)
        return -1;
    if (!upper && ioctl(fd, SIOCINQ, &inq) != 0)
        return -1;
    if (inq < 0 || (unsigned long long)inq > ti.tcpi_bytes_received)
        return -1;
    return (long long)(ti.tcpi_bytes_received - (unsigned long long)inq);
}
