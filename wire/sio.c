/*
 * wire/sio.c: the Engine.IO v4 / Socket.IO v5 packet parser. Pure over
 * (buf, len): no allocation, no reads past `len`, pointers into the input.
 *
 *   <eio type>[<sio type>[<attachments>-][<nsp>,][<ack id>][<json>]]
 *
 * The JSON itself is left to the caller (jansson), which must parse it
 * anyway; here only its first byte is checked, so that a digit run that is
 * not followed by valid JSON cannot pass as an ack id plus nothing.
 */
#include "wire.h"

#include <errno.h>

static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int
json_start(char c)
{
    /* no '-': Socket.IO data is an array or object, and "421-[..]" is an
     * attachment count on a packet type that has none */
    return c == '[' || c == '{' || c == '"' || is_digit(c) || c == 't' || c == 'f' || c == 'n';
}

int
wire_sio_parse(const char *buf, size_t len, wire_sio_packet_t *out)
{
    size_t i = 0;

    if (len == 0 || !is_digit(buf[0]) || buf[0] > '6')
        return -EINVAL;
    out->eio = (enum wire_eio_type)(buf[0] - '0');
    out->sio = WIRE_SIO_NONE;
    out->nsp = "/";
    out->nsp_len = 1;
    out->ack_id = -1;
    out->attachments = 0;
    out->data = buf + 1;
    out->data_len = len - 1;
    if (out->eio != WIRE_EIO_MESSAGE)
        return 0;

    i = 1;
    if (i >= len || !is_digit(buf[i]) || buf[i] > '6')
        return -EINVAL;
    out->sio = (enum wire_sio_type)(buf[i] - '0');
    i++;

    if (out->sio == WIRE_SIO_BINARY_EVENT || out->sio == WIRE_SIO_BINARY_ACK) {
        long n = 0;
        size_t start = i;
        while (i < len && is_digit(buf[i]) && i - start < 9)
            n = n * 10 + (buf[i++] - '0');
        if (i == start || i >= len || buf[i] != '-')
            return -EINVAL;
        out->attachments = n;
        i++;
    }

    if (i < len && buf[i] == '/') {
        size_t start = i;
        while (i < len && buf[i] != ',') {
            if (i - start >= WIRE_SIO_NSP_MAX)
                return -EINVAL;
            i++;
        }
        /* as the reference parser: the namespace ends at ',' or with the
         * packet */
        out->nsp = buf + start;
        out->nsp_len = i - start;
        if (i < len)
            i++;
    }

    if (i < len && is_digit(buf[i])) {
        long long id = 0;
        size_t start = i;
        while (i < len && is_digit(buf[i])) {
            if (i - start >= 18)
                return -EINVAL;
            id = id * 10 + (buf[i++] - '0');
        }
        out->ack_id = id;
    }

    out->data = buf + i;
    out->data_len = len - i;
    if (out->data_len > 0 && !json_start(buf[i]))
        return -EINVAL;
    return 0;
}
