/*
 * json_str.h — JSON string literals read once for the whole tree (see json_str.c): the
 * tokenizer.json scanner (load/jscan.c), the request reader (serve/request.c) and the chat
 * engine's JSON values (chat/jvalue.c).
 */
#ifndef TOK_JSON_STR_H
#define TOK_JSON_STR_H

#include <stdbool.h>
#include <stddef.h>

/* What is wrong with a string literal; 0 (TOK__JSTR_OK) when nothing is. */
typedef enum {
  TOK__JSTR_OK = 0,
  TOK__JSTR_UNTERMINATED, /* no closing quote before the end */
  TOK__JSTR_CONTROL,      /* a raw control character (below U+0020) */
  TOK__JSTR_BAD_ESCAPE,   /* a backslash before none of "\/bfnrtu */
  TOK__JSTR_BAD_U,        /* \u not followed by four hex digits */
  TOK__JSTR_SURROGATE,    /* a \u escape of a lone surrogate (as serde_json, refused) */
} tok__jstr_err;

/* The reason for err, a constant phrase such as "unterminated string". */
const char *tok__jstr_why(tok__jstr_err err);

/* The bytes of p[0, n) before its first '"', '\\' or control character (n when there is
 * none). */
size_t tok__jstr_plain_run(const char *p, size_t n);

/* Finds the end of the string literal whose text starts at s (just after its opening
 * quote) and runs to at most end, without decoding it: on TOK__JSTR_OK *stop is at the
 * closing quote and *plain tells whether the literal has no escapes (its text is then its
 * value). Escapes are not checked; raw control characters are. On an error *stop is at
 * the byte at fault. */
tok__jstr_err tok__jstr_scan(const char *s, const char *end, const char **stop, bool *plain);

/* Decodes the string literal whose text starts at s (just after its opening quote) and
 * runs to at most end, into out: escapes become their UTF-8 (a \u surrogate pair one code
 * point); other bytes are copied as they are (checking them to be UTF-8 is the caller's
 * choice). A decoded string is never longer than its literal, so out needs room for the
 * literal's bytes (tok__jstr_scan measures it) and may be s itself: decoding in place
 * works. On TOK__JSTR_OK *out_len is the decoded length and *stop is at the closing quote;
 * on an error *stop is at the byte at fault and out holds a part. Thread-safe. */
tok__jstr_err tok__jstr_decode(const char *s, const char *end, char *out, size_t *out_len,
                               const char **stop);

#endif
