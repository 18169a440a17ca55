/*
 * fuzz_sio: Engine.IO v4 / Socket.IO v5 packets (wire_sio_parse).
 *
 * Checks on an accepted packet: the types are the input's leading digits
 * (Engine.IO 0..6; Socket.IO 0..6 only inside a MESSAGE, else NONE); the
 * namespace is the default "/" or a slice of the input starting '/',
 * at most 128 bytes, ending at a ',' (which is not data) or with the
 * packet (then no ack id and no data follow); the ack id is -1 or 0..10^18-1;
 * attachments only on binary packets, below 10^9; the data is the input's
 * tail (data + data_len == end), starting with a byte JSON may start with.
 */
#include "fuzz.h"
#include "wire.h"

static int
json_first(char c)
{
    return c == '[' || c == '{' || c == '"' || (c >= '0' && c <= '9') || c == 't' || c == 'f' ||
           c == 'n';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = fuzz_dup(data, size);
    wire_sio_packet_t p;

    if (wire_sio_parse(in, size, &p) == 0) {
        FUZZ_CHECK(size >= 1 && in[0] >= '0' && in[0] <= '6');
        FUZZ_CHECK((int)p.eio == in[0] - '0');
        FUZZ_CHECK(fuzz_within(p.data, p.data_len, in, size));
        FUZZ_CHECK(p.data + p.data_len == in + size);
        FUZZ_CHECK(p.nsp != NULL && p.nsp_len >= 1 && p.nsp_len <= WIRE_SIO_NSP_MAX &&
                   p.nsp[0] == '/');
        if (p.eio != WIRE_EIO_MESSAGE) {
            FUZZ_CHECK(p.sio == WIRE_SIO_NONE);
            FUZZ_CHECK(p.data == in + 1);
            FUZZ_CHECK(p.nsp_len == 1 && p.ack_id == -1 && p.attachments == 0);
        } else {
            FUZZ_CHECK(size >= 2 && (int)p.sio == in[1] - '0');
            FUZZ_CHECK(p.sio >= WIRE_SIO_CONNECT && p.sio <= WIRE_SIO_BINARY_ACK);
            if (fuzz_within(p.nsp, p.nsp_len, in, size)) {
                if (p.nsp + p.nsp_len < in + size) {
                    FUZZ_CHECK(p.nsp[p.nsp_len] == ',');
                    FUZZ_CHECK(p.nsp + p.nsp_len < p.data);
                } else {
                    FUZZ_CHECK(p.data_len == 0 && p.ack_id == -1);
                    FUZZ_CHECK(memchr(p.nsp, ',', p.nsp_len) == NULL);
                }
            } else {
                FUZZ_CHECK(p.nsp_len == 1);
            }
            FUZZ_CHECK(p.ack_id >= -1 && p.ack_id < 1000000000000000000LL);
            FUZZ_CHECK(p.attachments >= 0 && p.attachments < 1000000000L);
            if (p.sio != WIRE_SIO_BINARY_EVENT && p.sio != WIRE_SIO_BINARY_ACK)
                FUZZ_CHECK(p.attachments == 0);
            if (p.data_len > 0)
                FUZZ_CHECK(json_first(p.data[0]));
        }
    }
    free(in);
    return 0;
}
