/*
 * buf.c — the growable byte buffer of tok.h. Every buffer has a cap: growing past it is
 * TOK_ELIMIT (which a server turns into 413), never an unbounded allocation.
 */
#include <stdlib.h>
#include <string.h>

#include "tok.h"

tok_err tok_buf_reserve(tok_buf *buf, size_t extra)
{
  size_t limit = buf->limit ? buf->limit : SIZE_MAX / 2;
  if (extra > limit || buf->len > limit - extra) return TOK_ELIMIT;
  size_t need = buf->len + extra;
  if (need <= buf->cap) return TOK_OK;
  size_t cap = buf->cap ? buf->cap : 256;
  while (cap < need) cap = cap > SIZE_MAX / 4 ? need : cap * 2;
  if (cap > limit + 1) cap = limit + 1; /* +1 leaves room for a terminating NUL */
  char *grown = realloc(buf->data, cap);
  if (!grown) return TOK_ENOMEM;
  buf->data = grown;
  buf->cap = cap;
  return TOK_OK;
}

tok_err tok_buf_append(tok_buf *buf, const void *bytes, size_t bytes_len)
{
  tok_err rc = tok_buf_reserve(buf, bytes_len);
  if (rc != TOK_OK) return rc;
  if (bytes_len) memcpy(buf->data + buf->len, bytes, bytes_len);
  buf->len += bytes_len;
  return TOK_OK;
}

void tok_buf_free(tok_buf *buf)
{
  free(buf->data);
  buf->data = NULL;
  buf->len = buf->cap = 0;
}
