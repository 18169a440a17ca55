/*
 * fuzz_url: the Redis URL (bus_url_parse), on the input as a C string.
 *
 * Checks: accepted only with the redis:// scheme, or redis+sentinel://
 * (then 1..16 sentinels, each a non-empty host and a port 1..65535, a master
 * name of 1..64 characters, and no master address yet); the host is
 * non-empty, the port 1..65535, the db 0..1000000, a user or password present only if
 * non-empty; bus_url_free releases everything (LeakSanitizer). A refusal
 * names the problem and leaves the output untouched (no allocation).
 */
#include "bus.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = fuzz_cstr(data, size);
    bus_url_t u, before;
    const char *err = NULL;
    int rc;

    memset(&u, 0x5a, sizeof u);
    memcpy(&before, &u, sizeof u);
    rc = bus_url_parse(in, &u, &err);
    if (rc == 0 && strncmp(in, "redis+sentinel://", 17) == 0) {
        FUZZ_CHECK(u.host == NULL && u.port == 0);
        FUZZ_CHECK(u.nsentinels >= 1 && u.nsentinels <= 16);
        for (size_t i = 0; i < u.nsentinels; i++) {
            FUZZ_CHECK(u.sentinel_hosts[i] != NULL && u.sentinel_hosts[i][0] != '\0');
            FUZZ_CHECK(u.sentinel_ports[i] >= 1 && u.sentinel_ports[i] <= 65535);
        }
        FUZZ_CHECK(u.master != NULL && strlen(u.master) >= 1 && strlen(u.master) <= 64);
        FUZZ_CHECK(u.db >= 0 && u.db <= 1000000);
        bus_url_free(&u);
    } else if (rc == 0) {
        FUZZ_CHECK(strncmp(in, "redis://", 8) == 0);
        FUZZ_CHECK(u.nsentinels == 0 && u.master == NULL);
        FUZZ_CHECK(u.host != NULL && u.host[0] != '\0' && strlen(u.host) <= strlen(in));
        FUZZ_CHECK(u.port >= 1 && u.port <= 65535);
        FUZZ_CHECK(u.db >= 0 && u.db <= 1000000);
        FUZZ_CHECK(u.user == NULL || u.user[0] != '\0');
        FUZZ_CHECK(u.pass == NULL || u.pass[0] != '\0');
        bus_url_free(&u);
    } else {
        FUZZ_CHECK(err != NULL);
        FUZZ_CHECK(memcmp(&u, &before, sizeof u) == 0);
    }
    free(in);
    return 0;
}
