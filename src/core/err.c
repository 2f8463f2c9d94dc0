/*
 * err.c — error names and messages (from the table in tok.h) and tok__fail, which every
 * module uses to fill a tok_error. Kept apart so that no stage depends on another stage
 * just to report a failure.
 */
#include <stdio.h>

#include "core/internal.h"

static const char *const ERR_NAMES[] = {
#define X(e, name, msg, status) name,
    TOK_ERROR_TABLE(X)
#undef X
};
static const char *const ERR_MESSAGES[] = {
#define X(e, name, msg, status) msg,
    TOK_ERROR_TABLE(X)
#undef X
};

const char *tok_err_name(tok_err code)
{
  return (unsigned)code < TOK_ERR__COUNT ? ERR_NAMES[code] : "unknown";
}

const char *tok_err_message(tok_err code)
{
  return (unsigned)code < TOK_ERR__COUNT ? ERR_MESSAGES[code] : "unknown";
}

tok_err tok__fail(tok_error *err, tok_err code, size_t pos, size_t index, const char *fmt, ...)
{
  if (!err) return code;
  err->code = code;
  err->pos = pos;
  err->index = index;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->detail, sizeof err->detail, fmt, ap);
  va_end(ap);
  /* details quote file contents and names and may be cut mid-character: keep them valid
   * UTF-8 so that callers can put them in JSON as they are */
  size_t len = strlen(err->detail), bad;
  while (!tok_utf8_valid(err->detail, len, &bad)) err->detail[bad] = '?';
  return code;
}
