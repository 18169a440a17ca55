/*
 * fuzz_url: the Redis URL (bus_url_parse), on the input as a C string.
 *
 * Checks: accepted only with the redis:// scheme; the host is non-empty,
 * the port 1..65535, the db 0..1000000, a user or password present only if
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

    memset(&u, 0x5a, sizeof u);
    memcpy(&before, &u, sizeof u);
    if (bus_url_parse(in, &u, &err) == 0) {
        FUZZ_CHECK(strncmp(in, "redis://", 8) == 0);
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
