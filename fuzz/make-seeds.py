#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/ and the libFuzzer
dictionaries fuzz/dict/<target>.dict (committed; rerun after editing).

Seeds are the valid forms and edge cases of the SPEC and the unit tests, one
file each, named for what they are. Tokens for the jwt target are signed
with the fuzz targets' secret (fuzz/jwt_common.h).

    python3 fuzz/make-seeds.py          rewrite every corpus and dictionary
"""
import base64
import hashlib
import hmac
import json
import os
import re
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = b"fuzz-secret-0123456789abcdef0123"  # FUZZ_JWT_SECRET
NOW = 1700000000  # FUZZ_JWT_NOW
ID64 = "0123456789012345678901234567890123456789012345678901234567890123"
X127 = "x" * 127


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def token(header, claims, secret=SECRET, sig=None):
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    c = claims if isinstance(claims, bytes) else json.dumps(claims, separators=(",", ":")).encode()
    signing = b64url(h) + b"." + b64url(c)
    if sig is None:
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
        alg = json.loads(h).get("alg", "HS256") if h.startswith(b"{") else "HS256"
        sig = b64url(hmac.new(secret, signing, digest.get(alg, hashlib.sha256)).digest())
    return signing + b"." + sig


def b(s):
    return s if isinstance(s, bytes) else s.encode("utf-8")


HS256 = {"alg": "HS256", "typ": "JWT"}
SUB = "76561198000000001"

CORPORA = {
    "bot": {
        "withdraw-full": 'withdraw 7 76561198000000001_ab12 tradeData:{"a":1}',
        "withdraw-hash": "withdraw 7 76561198000000001_ab12",
        "sale-steamid": "sale 7 76561198000000001",
        "sale-extra": "sale 7 76561198000000001 extra stuff",
        "checksteamguard-bot": "checkSteamGuard 7",
        "command-only": "checkSteamGuard",
        "name-id-chars": "with-draw_2 bot.x-1_y",
        "tradedata-as-bot": 'sale tradeData:{"steamId":"1"}',
        "tradedata-third": "sale 7 tradeData:1_a 2_b",
        "opaque-third": "sale 7 abc!def",
        "split-first-underscore": "x 7 1_a_b",
        "crlf": "withdraw 7 1_ab\r\n",
        "control-in-rest": 'withdraw 7 1_a tradeData:{\n\t"x":1}',
        "bad-double-space": "withdraw  7",
        "bad-trailing-space": "withdraw 7 ",
        "bad-nul": b"with\x00draw",
        "bad-utf8-command": b"w\xc3\xadthdraw 7",
        "bad-empty-hash": "withdraw 7 123_",
        "hash-128": "w 7 1_" + "h" * 128,
        "hash-129": "w 7 1_" + "h" * 129,
        "steamid-64": "w 7 " + ID64,
        "channel": "bot 7",
        "channel-name-id": "bot bot.x-1_y",
        "channel-64": "bot " + ID64,
        "channel-empty": "bot ",
        "channel-colon": "bot bot:7",
    },
    "route": {
        "tradestate": '{"steamId":"76561198000000001","token":"t","state":3,"msg":"ok"}',
        "tradestate-nested": '{"state":3,"extra":{"steamId":"9"},"steamId":"abcXYZ09"}',
        "tradestate-number": '{"steamId":76561198000000001}',
        "tradestate-int64-max": '{"steamId":9223372036854775807}',
        "tradestate-negative": '{"steamId":-1}',
        "tradestate-real": '{"steamId":7.6561198e16}',
        "tradestate-id64": '{"steamId":"' + ID64 + '"}',
        "tradestate-dup": '{"steamId":"1","steamId":"2"}',
        "tradestate-nul-escape": '{"steamId":"1\\u0000"}',
        "tradestate-bad-utf8": b'{"steamId":"1","msg":"\xed\xa0\x80"}',
        "tradestate-array": '[{"steamId":"1"}]',
        "tradestate-trailing": '{"steamId":"1"} x',
        "canceled": "76561198000000001",
        "canceled-ws": "  76561198000000001\n",
        "canceled-quoted": ' "765" \r\n',
        "canceled-unbalanced": '"765',
        "canceled-underscore": "765_1",
        "canceled-empty-quotes": '""',
    },
    "clientmsg": {
        "join-user": '{"op":"join","room":"user:76561198000000001"}',
        "join-other-user": '{"op":"join","room":"user:76561198000000002"}',
        "leave-bot": '{"room":"bot:42","op":"leave"}',
        "join-ops": '{"op":"join","room":"ops"}',
        "ping": '{"op":"ping"}',
        "ping-extra": ' {"op":"ping","extra":[1,2]} \n',
        "join-80": '{"op":"join","room":"user:' + "0" * 75 + '"}',
        "join-81": '{"op":"join","room":"user:' + "0" * 76 + '"}',
        "join-escape": '{"op":"join","room":"\\u00e9"}',
        "join-nul": '{"op":"join","room":"user:1\\u0000x"}',
        "join-no-room": '{"op":"join"}',
        "unknown-op": '{"op":"dance"}',
        "dup-op": '{"op":"ping","op":"join"}',
        "config-watch": '{"op":"config.watch","keys":["tradeDisabled"]}',
        "config-watch-many": '{"op":"config.watch","keys":["a","b.c","d:e","f-g","h_i"]}',
        "config-watch-bad-key": '{"op":"config.watch","keys":["a b"]}',
        "config-watch-33": '{"op":"config.watch","keys":[' + ",".join('"k%d"' % i for i in range(33)) + "]}",
        "config-watch-empty": '{"op":"config.watch","keys":[]}',
        "watch-bare-array": '["tradeDisabled","k2"]',
        "not-object": "[]",
        "bad-utf8": b'{"op":"ping","x":"\xff"}',
        "room-user": "user:76561198000000001",
        "room-bot": "bot:a.b-c_d",
        "room-ops": "ops",
        "room-bad": "bot:4 2",
    },
    "sio": {
        "ping": "2",
        "pong-probe": "3probe",
        "open": "0",
        "connect": "40",
        "connect-auth": '40{"token":"x"}',
        "connect-nsp": "40/admin,{}",
        "event": '42["join","bot:7"]',
        "event-ack": '4212["join","bot:7"]',
        "ack-nsp": "43/admin,7[1]",
        "binary-event": '451-["up",{"_placeholder":true,"num":0}]',
        "binary-nsp-ack": '451-/admin,3["up",{"_placeholder":true,"num":0}]',
        "binary-ack": '461-9[{"_placeholder":true,"num":0}]',
        "disconnect": "41",
        "connect-error": '44{"message":"x"}',
        "ack-18-digits": "42999999999999999999[1]",
        "ack-19-digits": "429999999999999999999[1]",
        "nsp-128": "40/" + X127 + ",{}",
        "nsp-129": "40/" + X127 + "y,{}",
        "nsp-unterminated": "40/admin",
        "attachments-9-digits": '45999999999-["a"]',
        "attachments-10-digits": '451111111111-["a"]',
        "utf8": b'42["\xe6\x97\xa5","\xf0\x9f\x8e\x89"]',
        "bad-type": "47",
        "bad-data": "42x",
    },
    "jwt": {
        "valid": token(HS256, {"sub": SUB, "exp": NOW + 60}),
        "valid-roles": token(HS256, {"sub": SUB, "exp": NOW + 60, "roles": ["ops", "admin", "service", "x"]}),
        "valid-name-sub": token(HS256, {"sub": "svc.worker-1_a", "exp": NOW + 60, "iat": NOW}),
        "expired": token(HS256, {"sub": SUB, "exp": NOW}),
        "exp-string": token(HS256, {"sub": SUB, "exp": str(NOW + 60)}),
        "roles-string": token(HS256, {"sub": SUB, "exp": NOW + 60, "roles": "ops"}),
        "sub-bad": token(HS256, {"sub": "user:1", "exp": NOW + 60}),
        "hs512": token({"alg": "HS512", "typ": "JWT"}, {"sub": SUB, "exp": NOW + 60}),
        "alg-none": token({"alg": "none", "typ": "JWT"}, {"sub": SUB, "exp": NOW + 60}, sig=b""),
        "bad-signature": token(HS256, {"sub": SUB, "exp": NOW + 60}, secret=b"other"),
        "no-signature": token(HS256, {"sub": SUB, "exp": NOW + 60}, sig=b""),
        "not-json-claims": token(HS256, b"not json"),
        "two-segments": b"eyJhbGciOiJIUzI1NiJ9.e30",
        "dots": b"..",
    },
    "jwt_claims": {
        "valid": '{"sub":"76561198000000001","exp":1700000060}',
        "valid-roles": '{"sub":"76561198000000001","exp":1700000060,"roles":["service","admin","ops","other"]}',
        "roles-empty": '{"sub":"a","exp":1700000060,"roles":[]}',
        "roles-null": '{"sub":"a","exp":1700000060,"roles":null}',
        "roles-mixed": '{"sub":"a","exp":1700000060,"roles":["ops",1]}',
        "exp-now": '{"sub":"a","exp":1700000000}',
        "exp-real": '{"sub":"a","exp":1800000000.0}',
        "exp-huge": '{"sub":"a","exp":99999999999999999999}',
        "exp-int64-max": '{"sub":"a","exp":9223372036854775807}',
        "sub-64": '{"sub":"' + ID64 + '","exp":1700000060}',
        "sub-65": '{"sub":"' + ID64 + '4","exp":1700000060}',
        "sub-escape": '{"sub":"\\u00e9","exp":1700000060}',
        "sub-number": '{"sub":76561198000000001,"exp":1700000060}',
        "dup-sub": '{"sub":"a","sub":"b","exp":1700000060}',
        "not-object": '["sub","exp"]',
        "header-none": b'{"alg":"none","typ":"JWT"}\x00{"sub":"a","exp":1700000060}',
        "header-hs512": b'{"alg":"HS512","typ":"JWT"}\x00{"sub":"a","exp":1700000060}',
        "header-no-typ": b'{"alg":"HS256"}\x00{"sub":"a","exp":1700000060}',
        "header-typ-other": b'{"alg":"HS256","typ":"JWS"}\x00{"sub":"a","exp":1700000060}',
        "header-dup-alg": b'{"alg":"none","alg":"HS256"}\x00{"sub":"a","exp":1700000060}',
        "header-not-json": b'HS256\x00{"sub":"a","exp":1700000060}',
    },
    "locks": {
        "name": "lockTrade:42",
        "name-all-chars": "A-z_0.9:{tag}",
        "name-reserved": "coordhub:fence:{x}",
        "name-almost-reserved": "Coordhub:x",
        "name-200": "n" * 200,
        "name-201": "n" * 201,
        "acquire": '{"ttl_ms":900000}',
        "acquire-full": '{"ttl_ms":86400000,"wait_ms":60000,"owner":"svc"}',
        "acquire-too-long": '{"ttl_ms":86400001}',
        "acquire-wait-negative": '{"ttl_ms":5,"wait_ms":-1}',
        "acquire-dup": '{"ttl_ms":5,"ttl_ms":6}',
        "acquire-owner-nul": '{"ttl_ms":5,"owner":"a\\u0000b"}',
        "acquire-owner-128": '{"ttl_ms":5,"owner":"' + "o" * 128 + '"}',
        "acquire-owner-129": '{"ttl_ms":5,"owner":"' + "o" * 129 + '"}',
        "extend": '{"token":"0123456789abcdef0123456789abcdef","ttl_ms":10}',
        "extend-token-64": '{"token":"' + "t" * 64 + '","ttl_ms":10}',
        "extend-token-65": '{"token":"' + "t" * 65 + '","ttl_ms":10}',
        "release": '{"token":"abc"}',
        "release-empty-token": '{"token":""}',
        "release-token-null": '{"token":null}',
        "not-json": "not json",
    },
    "reserve": {
        "reserve": '{"assets":["a1","a2"],"ttl_s":1200,"owner":"svc"}',
        "reserve-one": '{"assets":["a1"],"ttl_s":1}',
        "reserve-max-ttl": '{"assets":["a1"],"ttl_s":86400}',
        "reserve-empty": '{"assets":[],"ttl_s":5}',
        "reserve-dup": '{"assets":["a1","a1"],"ttl_s":5}',
        "reserve-bad-asset": '{"assets":["a 1"],"ttl_s":5}',
        "reserve-number-asset": '{"assets":[1],"ttl_s":5}',
        "reserve-nul-asset": '{"assets":["a\\u0000b"],"ttl_s":5}',
        "reserve-ttl-string": '{"assets":["a1"],"ttl_s":"5"}',
        "reserve-dup-key": '{"assets":["a1"],"ttl_s":5,"ttl_s":6}',
        "reserve-1000": '{"ttl_s":5,"assets":[' + ",".join('"a%d"' % i for i in range(1000)) + "]}",
        "reserve-1001": '{"ttl_s":5,"assets":[' + ",".join('"a%d"' % i for i in range(1001)) + "]}",
        "app": "730",
        "app-chars": "app_1-x",
        "asset-dot": "a.b",
        "asset-128": "a" * 128,
    },
    "url": {
        "default": "redis://127.0.0.1:6379/0",
        "host": "redis://localhost",
        "host-slash": "redis://localhost/",
        "port": "redis://localhost:7000",
        "host-chars-db": "redis://redis.internal-1_a/15",
        "pass-only-colon": "redis://:s3cret@host:1234/2",
        "user-pass": "redis://alice:s3cret@host",
        "lone-pass": "redis://s3cret@host",
        "percent": "redis://u:p%40ss%3a%2F@h",
        "at-in-pass": "redis://u:p@ss@h",
        "ipv6": "redis://[::1]:6380/3",
        "ipv6-bare": "redis://[::1]",
        "max": "redis://h:65535/1000000",
        "bad-port-0": "redis://h:0",
        "bad-port-big": "redis://h:99999999999",
        "bad-db": "redis://h/1000001",
        "bad-ipv6": "redis://[::1",
        "bad-escape": "redis://u:%4@h",
        "bad-nul-escape": "redis://u:%00@h",
        "empty-userinfo": "redis://:@h",
        "scheme-only": "redis://",
        "long-1024": "redis://" + "h" * 1024,
        "long-1025": "redis://" + "h" * 1025,
    },
    "escape": {
        "ascii": b"\x40hello world",
        "quotes": b'\x40say "hi" \\ bye',
        "controls": b"\x40\x00\x01\x1f\x7f\n\t",
        "utf8": b"\x40\xc3\xa9\xe6\x97\xa5\xf0\x9f\x8e\x89",
        "invalid": b"\x40\xff\xfe\xc3\xed\xa0\x80\xf4\x90\x80\x80\xc0\x80",
        "truncated-seq": b"\x08ab\xe6\x97",
        "cap-small": b"\x07\xe6\x97\xa5\xe6\x97\xa5",
        "cap-zero": b"\x00abc",
        "cap-one": b"\x01\x01",
    },
    "offset": {
        "min": "1-0",
        "typical": "1796229453110-4",
        "max": "9007199254740991-9007199254740991",
        "anchor-max-count-0": "9007199254740991-0",
        "two-to-53": "9007199254740992-1",
        "count-two-to-53": "1-9007199254740992",
        "digits-17": "10000000000000000-1",
        "wraps-to-1": "18446744073709551617-1",
        "anchor-0": "0-1",
        "leading-zero": "01-2",
        "count-leading-zero": "1-02",
        "no-count": "1-",
        "no-anchor": "-1",
        "dash": "-",
        "two-dashes": "1--2",
        "three-parts": "1-2-3",
        "plus": "+1-2",
        "space-before": " 1-2",
        "space-after": "1-2 ",
        "nul-inside": b"1-\x002",
        "nul-after": b"1-2\x00",
        "over-40": "1-" + "0" * 39,
    },
    "http1": {
        # one control byte (fuzz_http1.c: a small max of 3 * byte + 1, the
        # decoders' capacity in its low 6 bits, an argument name's length in
        # its top 3), then the bytes of a connection
        "get": b"\x7f" + b"GET /a/b?token=x%2Fy&offset=1-2 HTTP/1.1\r\nHost: h\r\n"
                         b"User-Agent: t\r\n\r\n",
        "post-body": b"\x7f" + b"POST /locks/a HTTP/1.1\r\nHost: h\r\n"
                               b"Content-Type: application/json\r\nContent-Length: 17\r\n"
                               b"Expect: 100-continue\r\n\r\n{\"ttl_ms\":900000}",
        "upgrade": b"\x7f" + b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: h\r\n"
                             b"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
                             b"Origin: https://app.example\r\nAuthorization: Bearer a.b.c\r\n"
                             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             b"Sec-WebSocket-Version: 13\r\n\r\n",
        "pipelined": b"\x7f" + b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n\r\n"
                               b"HEAD /2?x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        "options-star": b"\x7f" + b"OPTIONS * HTTP/1.1\r\nHost: h\r\nOrigin: o\r\n"
                                  b"Access-Control-Request-Headers: authorization\r\n\r\n",
        "http10-keep-alive": b"\x7f" + b"\r\nGET /healthz HTTP/1.0\r\n"
                                       b"Connection: Keep-Alive\r\n\r\n",
        "chunked": b"\x7f" + b"PUT /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"5\r\nhello\r\n0\r\n\r\n",
        "small-max": b"\x05" + b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        "need-more": b"\x7f" + b"GET /a HTTP/1.1\r\nHost: h\r\n",
        "query-arg": b"\xbf" + b"tokentoken=%41b%20c&tok=1&token=2",
        "bad-cl-te": b"\x7f" + b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n",
        "bad-obs-fold": b"\x7f" + b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
        "bad-bare-lf": b"\x7f" + b"GET / HTTP/1.1\nHost: h\n\n",
        "h2-preface": b"\x7f" + b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "garbage": b"\x7f\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n\x00\xff",
    },
    "queuespec": {
        # the list, then (after a newline) the alerts; no newline: the
        # default alerts
        "bull": "bull:tradeitQueue",
        "bullmq-colons": "bullmq:portfolio:high_priority",
        "prefixes": "bull@myapp:jobs,bullmq@p:x\n",
        "stream-dead": "stream:orders/workers/orders-dead",
        "all-kinds-alerts": "bull:tradeitQueue, bullmq:portfolio:high_priority,"
                            "stream:orders/workers\ntradeitQueue:waiting>20,"
                            "portfolio:high_priority:stuck>1500ms,orders:pending>10,oldest>30s,"
                            "stuck>2m",
        "kindless": "stream:orders/workers\norders:paused>0",
        "unit-on-count": "bull:a\nwaiting>5s",
        "four-slashes": "stream:a/b/c/d",
        "dup": "bull:a,bullmq:a",
        "name-200": "bull:" + "n" * 200 + "\n" + "n" * 200 + ":waiting-children>1000000",
        "name-201": "bull:" + "n" * 201,
        "nul-separated": b"bullmq:q\x00q:prioritized>1.5,stuck>0.5s",
        "gt-in-name": "bullmq:por>f,stream:s>1/g\npor>f:waiting>1,s>1:lag>5",
    },
    "config": {
        "put": '{"value":true,"category":"trading"}',
        "put-null": '{"value":null}',
        "put-object": '{"value":{"limits":[1,2.5,"x"],"on":false},"category":""}',
        "put-string": '{"value":"\\u00e9\\ud83c\\udf89"}',
        "put-no-value": '{"category":"trading"}',
        "put-bad-category": '{"value":1,"category":"a b"}',
        "put-category-number": '{"value":1,"category":7}',
        "put-dup": '{"value":1,"value":2}',
        "put-real": '{"value":1e308}',
        "key": "tradeDisabled",
        "key-chars": "a.b:c_d-e",
        "key-64": "k" * 64,
        "l2-json": '{"a":1}',
        "l2-legacy-text": "enabled",
        "l2-legacy-bad-utf8": b"on\xff\xfe",
        "l2-nul-escape": '"a\\u0000b"',
        "l2-raw-nul": b"a\x00b",
        "l2-whitespace": "  ",
    },
}


# Dictionaries: JSON's own tokens plus each parser's keywords (the actual
# bytes; dict_entry escapes them for libFuzzer).
JSON_TOKENS = ["{", "}", "[", "]", ":", ",", '"', "true", "false", "null", "-0", "1e9", "0.5",
               "\\u0000", "\\u00e9", "\\ud83c\\udf89", '\\"', "\\\\",
               "9223372036854775807", "9223372036854775808"]
DICTS = {
    "bot": [" ", "_", "\n", "\r\n", "tradeData:", "withdraw", "sale", "checkSteamGuard", "bot ",
            "76561198000000001"],
    "route": JSON_TOKENS + ['"steamId"', '"token"', '"state"', '"msg"', '"extra"',
                            "76561198000000001", " ", "\n"],
    "clientmsg": JSON_TOKENS + ['"op"', '"room"', '"join"', '"leave"', '"ping"', '"keys"',
                                '"config.watch"',
                                "user:", "bot:", "ops", "76561198000000001"],
    "sio": ["0", "2", "3", "4", "40", "41", "42", "43", "44", "45", "46", "1-", "/", "/admin,",
            ",", "[", "{", '"', "probe", "true", "null", "999999999999999999"],
    "jwt_claims": JSON_TOKENS + ['"sub"', '"exp"', '"roles"', '"iat"', '"alg"', '"typ"', '"HS256"',
                                 '"none"', '"JWT"', '"service"', '"admin"', '"ops"', "1700000000",
                                 "1700000001", "\x00"],
    "locks": JSON_TOKENS + ['"ttl_ms"', '"wait_ms"', '"owner"', '"token"', "86400000", "60000",
                            "coordhub:"],
    "reserve": JSON_TOKENS + ['"assets"', '"ttl_s"', '"owner"', "86400", "86401"],
    "url": ["redis://", "@", ":", "/", "[", "]", "%", "%40", "%00", "65535", "1000000", "::1",
            "localhost"],
    "offset": ["-", "0", "1", "9", "9007199254740991", "9007199254740992", "18446744073709551616",
               "+", " ", "\x00"],
    "queuespec": ["bull:", "bullmq:", "bull@", "stream:", "/", ",", ":", ">", "\n", "\x00",
                  "waiting", "active", "delayed", "completed", "failed", "paused", "prioritized",
                  "waiting-children", "stuck", "oldest", "stalled", "length", "pending", "lag",
                  "consumers", "dead-letters", "ms", "s", "m", "0.5", "1e12", " ", '"', "\\"],
    "http1": ["GET", "POST", "OPTIONS", "PUT", "PATCH", "DELETE", "CONNECT", "HEAD", " / ", "*",
              " HTTP/1.1\r\n", " HTTP/1.0\r\n", " HTTP/2.0\r\n", "\r\n", "\r\n\r\n", "\n", ": ",
              "Host: ", "Content-Length: ", "Transfer-Encoding: chunked", "Connection: ", "close",
              "keep-alive", "Upgrade: websocket", "upgrade", "Expect: 100-continue",
              "Authorization: Bearer ", "Origin: ", "Access-Control-Request-Headers: ", "?", "&",
              "=", "%", "%2F", "%00", "%0A", "token=", "offset=", ",", "\t", "999999999999999999",
              "\x7f"],
    "config": JSON_TOKENS + ['"value"', '"category"', "tradeDisabled", b"\xff", "\x00"],
}


def dict_entry(word):
    """One libFuzzer dictionary line: printable ASCII as is, the rest \\xNN."""
    out = []
    for c in b(word):
        if c in (0x22, 0x5C):
            out.append("\\" + chr(c))
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        else:
            out.append("\\x%02X" % c)
    return '"' + "".join(out) + '"'


def main():
    for target, seeds in CORPORA.items():
        d = os.path.join(HERE, "corpus", target)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for name, data in seeds.items():
            assert re.fullmatch(r"[a-z0-9-]+", name), name
            with open(os.path.join(d, name), "wb") as f:
                f.write(b(data))
        print("%-12s %3d seeds" % (target, len(seeds)))
    d = os.path.join(HERE, "dict")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for target, words in DICTS.items():
        with open(os.path.join(d, target + ".dict"), "w") as f:
            f.write("# libFuzzer dictionary for fuzz_%s (written by fuzz/make-seeds.py)\n" % target)
            for w in words:
                f.write(dict_entry(w) + "\n")


if __name__ == "__main__":
    main()
