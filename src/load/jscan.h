/*
 * jscan.h — a pull scanner over JSON text in memory (see jscan.c).
 */
#ifndef TOK_JSCAN_H
#define TOK_JSCAN_H

#include "core/internal.h"

typedef struct tok__js {
  const char *p, *end, *start; /* current position, end and start of the text */
  const char *file;            /* names the text in errors */
  tok_error *err;
} tok__js;

/* Skips whitespace and returns the next byte, or -1 at the end. */
int tok__js_peek(tok__js *js);
/* Consumes c (after whitespace) when it is next. */
bool tok__js_eat(tok__js *js, char c);
/* Decodes a string value, appending its UTF-8 to out. */
tok_err tok__js_string(tok__js *js, tok_buf *out);
/* Reads a non-negative integer below 2^32. */
tok_err tok__js_u32(tok__js *js, uint32_t *out);
/* Skips one value; start and len (if not NULL) get its text. */
tok_err tok__js_skip(tok__js *js, const char **start, size_t *len);
/* Fails with the current position. */
tok_err tok__js_fail(tok__js *js, const char *what);

#endif
