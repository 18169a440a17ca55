/*
 * wire/hex.h: one hex digit's value, for the parsers that decode escapes
 * (jscan.c's \uXXXX, http1.c's %XX). Internal to wire.
 */
#ifndef COORDHUB_WIRE_HEX_H
#define COORDHUB_WIRE_HEX_H

/* 0-15, or -1 when `c` is not a hex digit. */
static inline int
wire__hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
