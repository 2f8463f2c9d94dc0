/*
 * json.c — writes responses as JSON, by hand: id arrays digit by digit into the output
 * buffer (several times faster than a JSON library's "%1.15g" round trip), strings
 * escaped, and the one error envelope {"error": {"message", "type", "param", "code"}}.
 * Every function appends to a tok_buf and fails with TOK_ELIMIT at its cap.
 */
#include "serve/json.h"

#include <stdio.h>
#include <string.h>

#include "tok_chat.h"
#include "common/util.h"

/* ---------------------------------------------------------------------------------------
 * Writing
 */
tok_err tokd_json_lit(tok_buf *out, const char *literal)
{
  return tok_buf_append(out, literal, strlen(literal));
}

tok_err tokd_json_string(tok_buf *out, const char *s, size_t len)
{
  static const char hex[] = "0123456789abcdef";
  /* worst case every byte becomes \u00XX */
  tok_err rc = tok_buf_reserve(out, len * 6 + 2);
  if (rc != TOK_OK) return rc;
  char *o = out->data + out->len;
  *o++ = '"';
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') {
      *o++ = (char)c;
      continue;
    }
    *o++ = '\\';
    switch (c) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '\n': *o++ = 'n'; break;
    case '\r': *o++ = 'r'; break;
    case '\t': *o++ = 't'; break;
    default:
      *o++ = 'u', *o++ = '0', *o++ = '0', *o++ = hex[c >> 4], *o++ = hex[c & 15];
    }
  }
  *o++ = '"';
  out->len = (size_t)(o - out->data);
  return TOK_OK;
}

tok_err tokd_json_ids(tok_buf *out, const uint32_t *ids, size_t n)
{
  /* 10 digits and a comma per id, plus brackets */
  tok_err rc = tok_buf_reserve(out, n * 11 + 2);
  if (rc != TOK_OK) return rc;
  char *o = out->data + out->len;
  *o++ = '[';
  for (size_t i = 0; i < n; i++) {
    if (i) *o++ = ',';
    o += tokd_format_u32(o, ids[i]);
  }
  *o++ = ']';
  out->len = (size_t)(o - out->data);
  return TOK_OK;
}

tok_err tokd_json_uint(tok_buf *out, unsigned long long v)
{
  char tmp[24];
  int n = snprintf(tmp, sizeof tmp, "%llu", v);
  return tok_buf_append(out, tmp, (size_t)n);
}

/* vLLM's ErrorInfo.type: the exception class its handlers name for each status */
static const char *vllm_error_type(unsigned status)
{
  switch (status) {
  case 400: return "BadRequestError";
  case 404: return "NotFoundError";
  case 405: return "MethodNotAllowed";
  case 413: return "RequestEntityTooLarge";
  case 501: return "NotImplementedError";
  case 503: return "ServiceUnavailableError";
  default: return status >= 500 ? "InternalServerError" : "BadRequestError";
  }
}

tok_err tokd_json_error(tok_buf *out, const tokd_http_error *e, tokd_error_shape shape)
{
  tok_err rc;
  bool vllm = shape != TOKD_ERRORS_TOKD;
  const char *type = vllm ? vllm_error_type(e->status) : e->type;
  if (shape == TOKD_ERRORS_ANTHROPIC) {
    /* vllm/entrypoints/anthropic/api_router.py translate_error_response */
    if ((rc = tokd_json_lit(out, "{\"type\":\"error\",\"error\":{\"type\":")) ||
        (rc = tokd_json_string(out, type, strlen(type))) || (rc = tokd_json_lit(out, ",\"message\":")) ||
        (rc = tokd_json_string(out, e->message, strlen(e->message))) || (rc = tokd_json_lit(out, "}}")))
      return rc;
    return TOK_OK;
  }
  if ((rc = tokd_json_lit(out, "{\"error\":{\"message\":")) ||
      (rc = tokd_json_string(out, e->message, strlen(e->message))) ||
      (rc = tokd_json_lit(out, ",\"type\":")) ||
      (rc = tokd_json_string(out, type, strlen(type))) ||
      (rc = tokd_json_lit(out, ",\"param\":")))
    return rc;
  rc = e->param[0] ? tokd_json_string(out, e->param, strlen(e->param)) : tokd_json_lit(out, "null");
  if (rc || (rc = tokd_json_lit(out, ",\"code\":"))) return rc;
  /* vLLM's code is the HTTP status as a number; tokd's own endpoints give a name */
  rc = vllm ? tokd_json_uint(out, e->status) : tokd_json_string(out, e->code, strlen(e->code));
  if (rc || (rc = tokd_json_lit(out, vllm ? "}}" : "}}\n"))) return rc; /* vLLM: json.dumps, no newline */
  return TOK_OK;
}

tok_err tokd_json_double(tok_buf *out, double v)
{
  char buf[48];
  tok_chat_float_repr(buf, sizeof buf, v); /* json.dumps writes a float as repr() does */
  return tok_buf_append(out, buf, strlen(buf));
}
